use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::ids::{AgentId, ChannelIdentityId, CustomerId, WhatsappContactId};
use crate::schema::{channel_identities, customers, whatsapp_contacts};
use crate::types::Channel;

/// A person or company (K1).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = customers, check_for_backend(diesel::pg::Pg))]
pub struct Customer {
    pub id: CustomerId,
    pub name: String,
    pub trade_name: Option<String>,
    /// 11 digits, no punctuation.
    pub cpf: Option<String>,
    /// 14 characters (alphanumeric from 2026), no punctuation.
    pub cnpj: Option<String>,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    pub notes: Option<String>,
    pub portfolio_agent_id: Option<AgentId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Changes to a customer; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = customers)]
pub struct CustomerChangeset {
    pub name: Option<String>,
    pub trade_name: Option<Option<String>>,
    pub cpf: Option<Option<String>>,
    pub cnpj: Option<Option<String>>,
    pub emails: Option<Vec<String>>,
    pub phones: Option<Vec<String>>,
    pub notes: Option<Option<String>>,
    pub portfolio_agent_id: Option<Option<AgentId>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// How a customer is recognised on a channel (K2).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = channel_identities, check_for_backend(diesel::pg::Pg))]
pub struct ChannelIdentity {
    pub id: ChannelIdentityId,
    pub channel: Channel,
    pub address: String,
    pub customer_id: CustomerId,
    pub display_name: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A WhatsApp number for outbound messages, with its opt-in (C7, K6).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = whatsapp_contacts, check_for_backend(diesel::pg::Pg))]
pub struct WhatsappContact {
    pub id: WhatsappContactId,
    /// E.164.
    pub phone: String,
    /// As WhatsApp sends it (may lack Brazil's ninth digit).
    pub wa_id: Option<String>,
    pub name: Option<String>,
    pub customer_id: Option<CustomerId>,
    pub opted_in: bool,
    pub opted_in_at: Option<DateTime<Utc>>,
    pub opt_in_source: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
