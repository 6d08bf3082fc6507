//! The agent desk in a real headless Chromium (Debian's chromium + chromium-driver), against a
//! real server and database: two agents sign in, a customer writes, automatic distribution gives
//! the conversation to one, they exchange messages, a transfer moves it to the other, it is
//! concluded with a classification, and both screens follow without a reload. A hostile customer
//! name shows as text. Screenshots of every step go to `target/e2e/`.

use chrono::Utc;
use schema::testing::TestDb;
use schema::{Channel, store};
use serde_json::json;

mod browser;
use browser::{Demo, browser, click, demo_server, driver, find, go_available, shot, sign_in, text_until, tid};

const XSS: &str = "<img src=x onerror=alert(1)>";

/// The customer writes on WhatsApp, with a hostile name.
async fn customer_writes(base: &str, id: &str, text: &str) {
    browser::whatsapp_customer_writes(base, "5511987654321", XSS, id, text).await;
}

/// Links conversation `c` to a new customer with this phone.
fn identify(db: &TestDb, c: schema::ConversationId, phone: &str) {
    let now = Utc::now();
    let customer = schema::models::Customer {
        id: schema::CustomerId::new(),
        name: "Cliente Identificado".into(),
        trade_name: None,
        cpf: None,
        cnpj: None,
        emails: vec![],
        phones: vec![phone.into()],
        notes: None,
        portfolio_agent_id: None,
        created_at: now,
        updated_at: now,
    }
    .insert(&mut db.conn())
    .unwrap();
    let link = schema::models::ConversationChangeset { customer_id: Some(Some(customer.id)), ..Default::default() };
    store::update_conversation(&mut db.conn(), c, &link).unwrap();
}

#[actix_rt::test]
async fn two_agents_serve_a_customer_from_arrival_to_conclusion() {
    let Demo { db, service: whatsapp, engine, base, .. } = demo_server(Channel::Whatsapp).await;

    let (_driver, port) = driver().await;
    let ana = browser(port, &[], json!({})).await;
    let bruno = browser(port, &[], json!({})).await;

    sign_in(&ana, &base, "ana").await;
    sign_in(&bruno, &base, "bruno").await;
    shot(&ana, "01-ana-signed-in").await;
    go_available(&ana).await;
    go_available(&bruno).await;

    // A customer with a hostile name writes on WhatsApp: automatic distribution gives it to Ana,
    // idle the longest.
    customer_writes(&base, "wamid.E2E1", &format!("Olá! {XSS}")).await;
    let c = schema::store::open_conversation_for(&mut db.conn(), whatsapp, "5511987654321").unwrap().unwrap().id;
    // The customer is identified (K2; the desk learns it on its next load), so the chat offers a
    // Call (C8).
    identify(&db, c, "+5511987654321");
    ana.refresh().await.unwrap();
    find(&ana, &tid("presence-status")).await;
    let item = format!("conv-item-{c}");
    click(&ana, &tid(&item)).await;
    text_until(&ana, &tid("message-list"), |t| t.contains(XSS)).await;
    // The demo's voice service has no phone system: the desk says so, and nothing else changes.
    click(&ana, &tid("action-call")).await;
    text_until(&ana, &tid("toasts"), |t| t.contains("Nenhum serviço de voz seu pode fazer ligações")).await;
    shot(&ana, "02-ana-gets-the-customer").await;
    let injected: bool = ana
        .execute("return !!document.querySelector('[data-testid=\"conv-view\"] img[src=\"x\"]')", vec![])
        .await
        .unwrap()
        .as_bool()
        .unwrap_or(true);
    assert!(!injected, "customer content is text, never markup");
    text_until(&ana, &tid("tab-active-count"), |t| t.trim() == "1").await;

    // They exchange messages.
    find(&ana, &tid("composer-input")).await.send_keys("Bom dia! Como posso ajudar?").await.unwrap();
    click(&ana, &tid("composer-send")).await;
    text_until(&ana, &tid("message-list"), |t| t.contains("Como posso ajudar")).await;
    customer_writes(&base, "wamid.E2E2", "Quero saber do meu pedido").await;
    text_until(&ana, &tid("message-list"), |t| t.contains("meu pedido")).await;
    shot(&ana, "03-messages-exchanged").await;

    // Ana transfers it to Bruno: it leaves her Active tab and appears in his, history kept.
    // She picks him from the colleagues of the service, listed with their presence.
    click(&ana, &tid("action-transfer")).await;
    let option = find(&ana, &tid("transfer-agent-bruno")).await;
    let label = option.text().await.unwrap();
    assert!(label.contains("Bruno") && label.contains("Dispon"), "Bruno is listed as available: {label:?}");
    find(&ana, &tid("transfer-agent")).await.select_by_label(&label).await.unwrap();
    shot(&ana, "04-transfer-dialog").await;
    click(&ana, &tid("transfer-confirm")).await;
    text_until(&ana, &tid("tab-active-count"), |t| t.trim() == "0").await;
    click(&bruno, &tid(&item)).await;
    text_until(&bruno, &tid("message-list"), |t| t.contains("meu pedido") && t.contains("Como posso ajudar")).await;
    text_until(&bruno, &tid("tab-active-count"), |t| t.trim() == "1").await;
    shot(&bruno, "05-bruno-has-it").await;

    // Bruno concludes with a classification.
    let classification = store::classifications_for(&mut db.conn(), None).unwrap().into_iter().next().unwrap();
    click(&bruno, &tid("action-conclude")).await;
    let select = find(&bruno, &tid("conclude-classification")).await;
    select.select_by_value(&classification.id.to_string()).await.unwrap();
    click(&bruno, &tid("conclude-confirm")).await;
    text_until(&bruno, &tid("tab-active-count"), |t| t.trim() == "0").await;
    shot(&bruno, "06-bruno-concluded").await;
    let row = schema::models::Conversation::find(&mut db.conn(), c).unwrap();
    assert_eq!(row.state, schema::ConversationState::Concluded);
    assert_eq!(row.classification_id, Some(classification.id));

    // Both summaries follow without a reload: Ana started it, Bruno concluded it (D2).
    text_until(&ana, &tid("summary-started-count"), |t| t.trim() == "1").await;
    text_until(&bruno, &tid("summary-concluded-count"), |t| t.trim() == "1").await;
    shot(&ana, "07-ana-summary").await;
    shot(&bruno, "08-bruno-summary").await;

    let _ = ana.close().await;
    let _ = bruno.close().await;
    engine.stop();
}
