//! Integration tests of the `omniroute` binary against a real PostgreSQL.

mod api_admin;
mod api_agent;
mod api_messages;
mod api_session;
mod api_supervisor;
mod api_support;
mod cti;
mod meta;
mod outbound;
mod server;
mod sms;
mod telegram;
mod webchat;
mod whatsapp;
mod ws;
