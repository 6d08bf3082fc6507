//! The closed vocabularies of the data model (SPEC.md terms). Stored as `text` with a CHECK
//! constraint in PostgreSQL, so a new value is a migration and never a silent surprise.

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;
use serde::{Deserialize, Serialize};

/// A value that is not one of an enum's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownValue {
    /// What was being parsed ("channel", "state", ...).
    pub kind: &'static str,
    /// The word that did not match.
    pub value: String,
}

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident ($kind:literal) { $($(#[$vdoc:meta])* $variant:ident = $word:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, AsExpression, FromSqlRow)]
        #[diesel(sql_type = Text)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $word)] $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The stored and serialised word.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word,)* }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($word => Ok($name::$variant),)*
                    _ => Err(UnknownValue { kind: $kind, value: s.to_owned() }),
                }
            }
        }

        impl ToSql<Text, Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                <str as ToSql<Text, Pg>>::to_sql(self.as_str(), out)
            }
        }

        impl FromSql<Text, Pg> for $name {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                let word = <String as FromSql<Text, Pg>>::from_sql(bytes)?;
                Ok(word.parse()?)
            }
        }
    };
}

text_enum! {
    /// The eight channels customers reach us through.
    Channel ("channel") {
        Email = "email",
        Webchat = "webchat",
        Whatsapp = "whatsapp",
        Messenger = "messenger",
        Instagram = "instagram",
        Telegram = "telegram",
        Sms = "sms",
        Voice = "voice",
    }
}

impl Channel {
    /// R4 default capacity when an agent has no explicit setting for the channel.
    pub fn default_capacity(self) -> i32 {
        match self {
            Channel::Voice => 1,
            Channel::Email => 3,
            _ => 5,
        }
    }

    /// Channels whose conversations go idle when the customer stops writing (R10).
    pub fn is_chat_like(self) -> bool {
        !matches!(self, Channel::Email | Channel::Voice)
    }
}

text_enum! {
    /// What a signed-in person may do (N3).
    Role ("role") {
        Agent = "agent",
        Supervisor = "supervisor",
        Admin = "admin",
    }
}

text_enum! {
    /// An agent's presence (R8, R9).
    PresenceStatus ("presence status") {
        Offline = "offline",
        Available = "available",
        /// Asked for a pause with conversations still open: receives nothing new.
        PausePending = "pause_pending",
        Paused = "paused",
    }
}

text_enum! {
    /// Conversation states (R2).
    ConversationState ("conversation state") {
        PreOpening = "pre_opening",
        Queued = "queued",
        Offered = "offered",
        InService = "in_service",
        InactiveInQueue = "inactive_in_queue",
        Concluded = "concluded",
        Cancelled = "cancelled",
        Abandoned = "abandoned",
        Rejected = "rejected",
    }
}

impl ConversationState {
    /// The states a conversation can still leave.
    pub const OPEN: &'static [ConversationState] = &[
        ConversationState::PreOpening,
        ConversationState::Queued,
        ConversationState::Offered,
        ConversationState::InService,
        ConversationState::InactiveInQueue,
    ];

    /// True for `concluded`, `cancelled`, `abandoned` and `rejected`.
    pub fn is_final(self) -> bool {
        !Self::OPEN.contains(&self)
    }

    /// True when the conversation waits in its service's queue.
    pub fn is_waiting(self) -> bool {
        matches!(self, ConversationState::Queued | ConversationState::InactiveInQueue)
    }
}

text_enum! {
    /// Sub-state of a conversation in service (R10).
    SubState ("sub-state") {
        Active = "active",
        InactiveAtAgent = "inactive_at_agent",
    }
}

text_enum! {
    /// Why a conversation is held in `pre_opening`.
    HoldReason ("hold reason") {
        Approval = "approval",
        OutOfHours = "out_of_hours",
        Automation = "automation",
    }
}

text_enum! {
    /// Who started the contact.
    Direction ("direction") {
        Inbound = "inbound",
        Outbound = "outbound",
    }
}

text_enum! {
    /// Which way a message went.
    MessageDirection ("message direction") {
        In = "in",
        Out = "out",
        /// A note or a system line shown in the history, never sent.
        Internal = "internal",
    }
}

text_enum! {
    /// The content of a message.
    MessageKind ("message kind") {
        Text = "text",
        Image = "image",
        Audio = "audio",
        Video = "video",
        Document = "document",
        Sticker = "sticker",
        Location = "location",
        Contacts = "contacts",
        Interactive = "interactive",
        Template = "template",
        Email = "email",
        Call = "call",
        System = "system",
    }
}

text_enum! {
    /// Delivery status (C2, D8).
    MessageStatus ("message status") {
        Received = "received",
        Pending = "pending",
        Sent = "sent",
        Delivered = "delivered",
        Read = "read",
        Failed = "failed",
    }
}

impl MessageStatus {
    /// Order of progress: a status never moves backwards (statuses arrive out of order).
    pub fn rank(self) -> u8 {
        match self {
            MessageStatus::Received | MessageStatus::Pending => 0,
            MessageStatus::Sent => 1,
            MessageStatus::Delivered => 2,
            MessageStatus::Read => 3,
            MessageStatus::Failed => 4,
        }
    }
}

text_enum! {
    /// Who caused a conversation event.
    Actor ("actor") {
        System = "system",
        Agent = "agent",
        Supervisor = "supervisor",
        Customer = "customer",
        Provider = "provider",
    }
}

text_enum! {
    /// How an agent came to own a conversation.
    AssignmentVia ("assignment kind") {
        Auto = "auto",
        Pull = "pull",
        Offer = "offer",
        Transfer = "transfer",
        Voice = "voice",
        Outbound = "outbound",
        Restore = "restore",
    }
}

text_enum! {
    /// How an offer ended (R7).
    OfferOutcome ("offer outcome") {
        Accepted = "accepted",
        Rejected = "rejected",
        Lapsed = "lapsed",
        Withdrawn = "withdrawn",
    }
}

text_enum! {
    /// What kind of routing decision was made (R16).
    DecisionMode ("decision mode") {
        Auto = "auto",
        Offer = "offer",
        Pull = "pull",
        PullChosen = "pull_chosen",
        Transfer = "transfer",
        Voice = "voice",
        Portfolio = "portfolio",
    }
}

text_enum! {
    /// Whether a case is still pending.
    CaseStatus ("case status") {
        Open = "open",
        Closed = "closed",
    }
}

text_enum! {
    /// A form field's input type (K5).
    FieldType ("field type") {
        Text = "text",
        Textarea = "textarea",
        Number = "number",
        Date = "date",
        Select = "select",
        Checkbox = "checkbox",
    }
}

text_enum! {
    /// Meta's template category.
    TemplateCategory ("template category") {
        Marketing = "marketing",
        Utility = "utility",
        Authentication = "authentication",
    }
}

text_enum! {
    /// Meta's template review status.
    TemplateStatus ("template status") {
        Approved = "approved",
        Pending = "pending",
        Rejected = "rejected",
        Paused = "paused",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_parses_back() {
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>(), Ok(*c));
        }
        for s in ConversationState::ALL {
            assert_eq!(s.as_str().parse::<ConversationState>(), Ok(*s));
        }
        assert!("phone".parse::<Channel>().is_err());
    }

    #[test]
    fn serde_uses_the_stored_word() {
        let json = serde_json::to_string(&ConversationState::InactiveInQueue).unwrap();
        assert_eq!(json, "\"inactive_in_queue\"");
    }

    #[test]
    fn default_capacities_follow_r4() {
        assert_eq!(Channel::Voice.default_capacity(), 1);
        assert_eq!(Channel::Email.default_capacity(), 3);
        assert_eq!(Channel::Whatsapp.default_capacity(), 5);
    }
}
