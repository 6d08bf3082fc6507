use diesel::prelude::*;

use crate::StoreResult;
use crate::ids::CustomerId;
use crate::models::{ChannelIdentity, Customer, CustomerChangeset, WhatsappContact};
use crate::schema::{channel_identities, customers, whatsapp_contacts};
use crate::types::Channel;

/// The customer recognised by this channel address (K2), if linked.
pub fn customer_by_identity(conn: &mut PgConnection, channel: Channel, address: &str) -> StoreResult<Option<Customer>> {
    Ok(channel_identities::table
        .inner_join(customers::table)
        .filter(channel_identities::channel.eq(channel))
        .filter(channel_identities::address.eq(address))
        .select(Customer::as_select())
        .first(conn)
        .optional()?)
}

/// Customers having this email (K2: webchat identifies only when exactly one does).
pub fn customers_by_email(conn: &mut PgConnection, email: &str) -> StoreResult<Vec<Customer>> {
    Ok(customers::table
        .filter(customers::emails.contains(vec![email.to_owned()]))
        .select(Customer::as_select())
        .load(conn)?)
}

/// Customers having this phone.
pub fn customers_by_phone(conn: &mut PgConnection, phone: &str) -> StoreResult<Vec<Customer>> {
    Ok(customers::table
        .filter(customers::phones.contains(vec![phone.to_owned()]))
        .select(Customer::as_select())
        .load(conn)?)
}

/// Customers having any of these phones (the same number written several ways).
pub fn customers_by_any_phone(conn: &mut PgConnection, phones: &[String]) -> StoreResult<Vec<Customer>> {
    Ok(customers::table
        .filter(customers::phones.overlaps_with(phones.to_vec()))
        .select(Customer::as_select())
        .load(conn)?)
}

/// Applies changes to a customer and returns it.
pub fn update_customer(conn: &mut PgConnection, id: CustomerId, changes: &CustomerChangeset) -> StoreResult<Customer> {
    Ok(diesel::update(customers::table.find(id)).set(changes).returning(Customer::as_returning()).get_result(conn)?)
}

/// Links a channel address to a customer, or returns the existing link (same address, any customer).
pub fn link_identity(conn: &mut PgConnection, identity: &ChannelIdentity) -> StoreResult<ChannelIdentity> {
    let inserted = diesel::insert_into(channel_identities::table)
        .values(identity)
        .on_conflict_do_nothing()
        .returning(ChannelIdentity::as_returning())
        .get_result(conn)
        .optional()?;
    match inserted {
        Some(row) => Ok(row),
        None => Ok(channel_identities::table
            .filter(channel_identities::channel.eq(identity.channel))
            .filter(channel_identities::address.eq(&identity.address))
            .select(ChannelIdentity::as_select())
            .first(conn)?),
    }
}

/// The WhatsApp contact with this E.164 phone or wa_id.
pub fn whatsapp_contact_by_number(conn: &mut PgConnection, number: &str) -> StoreResult<Option<WhatsappContact>> {
    Ok(whatsapp_contacts::table
        .filter(whatsapp_contacts::phone.eq(number).or(whatsapp_contacts::wa_id.eq(number)))
        .select(WhatsappContact::as_select())
        .first(conn)
        .optional()?)
}

/// WhatsApp contacts by name (`q` anywhere in it, any case) or by number (`q`'s digits anywhere in
/// it), ordered by name; all of them without `q`.
pub fn find_whatsapp_contacts(
    conn: &mut PgConnection,
    q: Option<&str>,
    limit: i64,
) -> StoreResult<Vec<WhatsappContact>> {
    let mut query = whatsapp_contacts::table.select(WhatsappContact::as_select()).into_boxed();
    if let Some(q) = q.map(str::trim).filter(|q| !q.is_empty()) {
        let escaped = q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let digits: String = q.chars().filter(char::is_ascii_digit).collect();
        let by_name = whatsapp_contacts::name.ilike(format!("%{escaped}%"));
        query = if digits.len() >= 3 {
            query.filter(by_name.or(whatsapp_contacts::phone.like(format!("%{digits}%"))))
        } else {
            query.filter(by_name)
        };
    }
    Ok(query.order((whatsapp_contacts::name.asc(), whatsapp_contacts::phone.asc())).limit(limit).load(conn)?)
}

/// How a customer search reads its text (K1): the caller tells what it recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerSearch {
    Cpf(String),
    Cnpj(String),
    Email(String),
    /// Every way the number may be stored.
    Phones(Vec<String>),
    /// Anywhere in the name or the trade name, any case.
    Name(String),
    /// Every customer (the first ones by name).
    All,
}

/// Customers matching `search`, by name, at most `limit`. Exact ids, phones and emails use
/// their indexes; names the trigram indexes (migration `..._customer_search`).
pub fn search_customers(conn: &mut PgConnection, search: &CustomerSearch, limit: i64) -> StoreResult<Vec<Customer>> {
    let query = customers::table.select(Customer::as_select()).into_boxed();
    let query = match search {
        CustomerSearch::Cpf(cpf) => query.filter(customers::cpf.eq(cpf.clone())),
        CustomerSearch::Cnpj(cnpj) => query.filter(customers::cnpj.eq(cnpj.clone())),
        CustomerSearch::Email(email) => query.filter(customers::emails.contains(vec![email.clone()])),
        CustomerSearch::Phones(phones) => query.filter(customers::phones.overlaps_with(phones.clone())),
        CustomerSearch::All => query,
        CustomerSearch::Name(text) => {
            let pattern = format!("%{}%", text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
            query.filter(customers::name.ilike(pattern.clone()).or(customers::trade_name.ilike(pattern)))
        }
    };
    Ok(query.order((customers::name.asc(), customers::id.asc())).limit(limit).load(conn)?)
}
