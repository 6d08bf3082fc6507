//! Integration tests of the `omniroute` binary against a real PostgreSQL.

mod api_admin;
mod api_agent;
mod api_messages;
mod api_session;
mod api_supervisor;
mod api_support;
mod ari;
mod catalogue;
mod cti;
mod email;
mod fuzz;
mod identify;
mod mail_servers;
mod media;
mod meta;
mod monitor;
mod outage;
mod outbound;
mod replays;
mod server;
mod session_security;
mod sms;
mod telegram;
mod webchat;
mod whatsapp;
mod ws;
