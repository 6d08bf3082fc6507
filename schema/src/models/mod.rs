//! Rows of every table: `X` is what a query returns (and, where the id and timestamps are
//! chosen by the application, also what is inserted); `NewX` inserts rows whose id the
//! database assigns; `XChangeset` updates.

mod content;
mod conversations;
mod customers;
mod media;
mod people;
mod webchat;
mod webhooks;

pub use content::*;
pub use conversations::*;
pub use customers::*;
pub use media::*;
pub use people::*;
pub use webchat::*;
pub use webhooks::*;
