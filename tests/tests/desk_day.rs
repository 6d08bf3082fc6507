//! The agent desk through a working day, in a real headless Chromium against a real server and
//! database: what an agent notices when a provider refuses a reply, with a second tab of the same
//! agent open. Providers are faked locally, and the fakes check the exact requests sent.

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, HttpServer, web as aw};
use schema::Channel;
use schema::models::ServiceChangeset;
use serde_json::{Value, json};

mod browser;
use browser::{
    Demo, browser, click, demo_server_with, driver, find, go_available, shot, sign_in, text_until, tid,
    whatsapp_customer_writes,
};

/// A Graph API that refuses every message at once, as WhatsApp does outside the 24-hour window
/// (HTTP 400, error 131047), and keeps what it was sent.
async fn refusing_graph() -> (String, Arc<Mutex<Vec<(String, Value)>>>) {
    let seen: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let kept = seen.clone();
    let server = HttpServer::new(move || {
        let kept = kept.clone();
        App::new().default_service(aw::to(move |req: actix_web::HttpRequest, body: aw::Bytes| {
            let kept = kept.clone();
            async move {
                let sent = serde_json::from_slice(&body).unwrap_or(Value::Null);
                kept.lock().unwrap().push((req.path().to_owned(), sent));
                HttpResponse::BadRequest().json(json!({"error": {
                    "message": "Re-engagement message", "type": "OAuthException", "code": 131047,
                    "error_data": {"messaging_product": "whatsapp",
                                   "details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number."},
                    "fbtrace_id": "AbCdEf"}}))
            }
        }))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let base = format!("http://127.0.0.1:{}", server.addrs()[0].port());
    actix_rt::spawn(server.run());
    (base, seen)
}

#[actix_rt::test]
async fn a_reply_the_provider_refuses_turns_failed_live_in_every_tab() {
    let (graph, seen) = refusing_graph().await;
    let Demo { db, service, engine, base, .. } = demo_server_with(Channel::Whatsapp, |c, service| {
        let row = schema::models::Service::find(c, service).unwrap();
        let mut provider = row.provider;
        provider["api_base_url"] = json!(graph);
        let change = ServiceChangeset { provider: Some(provider), ..Default::default() };
        schema::store::update_service(c, service, &change).unwrap();
    })
    .await;

    let (_driver, port) = driver().await;
    let tab = browser(port, &[], json!({})).await;
    let other_tab = browser(port, &[], json!({})).await;
    sign_in(&tab, &base, "ana").await;
    sign_in(&other_tab, &base, "ana").await;
    go_available(&tab).await;

    whatsapp_customer_writes(&base, "5511912345678", "Marina", "wamid.DAY1", "Oi, preciso de ajuda").await;
    let c = schema::store::open_conversation_for(&mut db.conn(), service, "5511912345678").unwrap().unwrap().id;
    let item = tid(&format!("conv-item-{c}"));
    click(&tab, &item).await;
    click(&other_tab, &item).await;
    text_until(&tab, &tid("message-list"), |t| t.contains("preciso de ajuda")).await;
    text_until(&other_tab, &tid("message-list"), |t| t.contains("preciso de ajuda")).await;

    find(&tab, &tid("composer-input")).await.send_keys("Claro! Qual o número do pedido?").await.unwrap();
    click(&tab, &tid("composer-send")).await;

    // Both tabs show it failed, with the provider's reason, without a reload.
    for (who, c) in [("tab", &tab), ("other tab", &other_tab)] {
        let failed = find(c, "[data-testid=\"message-list\"] .msg-failed").await;
        let text = failed.text().await.unwrap();
        assert!(text.contains("Qual o número do pedido"), "{who}: the failed bubble is the reply: {text:?}");
        assert!(text.contains("131047"), "{who}: the provider's error is in sight: {text:?}");
        let ticks = c
            .execute("return [...document.querySelectorAll('.tick-pending')].length", vec![])
            .await
            .unwrap()
            .as_u64()
            .unwrap();
        assert_eq!(ticks, 0, "{who}: no clock left on a refused reply");
    }
    shot(&tab, "day-01-refused-reply").await;

    // The fake saw exactly the reply, addressed to the customer.
    let sent = seen.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "one request, no retry of a refusal: {sent:?}");
    assert_eq!(sent[0].0, "/v21.0/100000000000001/messages");
    assert_eq!(sent[0].1["to"], "5511912345678");
    assert_eq!(sent[0].1["type"], "text");
    assert_eq!(sent[0].1["text"]["body"], "Claro! Qual o número do pedido?");

    let _ = tab.close().await;
    let _ = other_tab.close().await;
    engine.stop();
}

/// The demo with WhatsApp customers left in the queue for agents to take (no automatic
/// distribution).
async fn queue_by_hand() -> Demo {
    demo_server_with(Channel::Whatsapp, |c, service| {
        let change = ServiceChangeset { auto_distribution: Some(false), ..Default::default() };
        schema::store::update_service(c, service, &change).unwrap();
    })
    .await
}

#[actix_rt::test]
async fn the_queue_list_is_live_agrees_with_the_counts_and_its_waits_tick() {
    let Demo { db, service, engine, base, .. } = queue_by_hand().await;
    let (_driver, port) = driver().await;
    let ana = browser(port, &[], json!({})).await;
    let bruno = browser(port, &[], json!({})).await;
    sign_in(&ana, &base, "ana").await;
    sign_in(&bruno, &base, "bruno").await;
    go_available(&ana).await;
    go_available(&bruno).await;
    text_until(&bruno, &tid("queue-list"), |t| t.contains("Nenhum cliente na fila de WhatsApp")).await;

    whatsapp_customer_writes(&base, "5511922223333", "Rafael", "wamid.Q1", "Bom dia").await;
    let c = schema::store::open_conversation_for(&mut db.conn(), service, "5511922223333").unwrap().unwrap().id;
    let row = tid(&format!("queue-row-{c}"));
    // Both desks show the customer in the list and in the count, without a click or a reload.
    for desk in [&ana, &bruno] {
        text_until(desk, &tid("channel-count-whatsapp"), |t| t.trim() == "1").await;
        text_until(desk, &row, |t| t.contains("Rafael")).await;
    }
    let wait = tid(&format!("queue-wait-{c}"));
    let before = text_until(&bruno, &wait, |t| t.contains("Espera")).await;
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let after = text_until(&bruno, &wait, |t| t.contains("Espera")).await;
    assert_ne!(before, after, "the wait moves while the customer waits");
    shot(&bruno, "day-02-queue-live").await;

    // Ana takes the customer: Bruno's list and count drop it at once; no "Atender" is left.
    click(&ana, &tid(&format!("queue-take-{c}"))).await;
    text_until(&ana, &tid("tab-active-count"), |t| t.trim() == "1").await;
    text_until(&bruno, &tid("channel-count-whatsapp"), |t| t.trim() == "0").await;
    text_until(&bruno, &tid("queue-list"), |t| t.contains("Nenhum cliente na fila de WhatsApp")).await;
    let takes = bruno
        .execute("return document.querySelectorAll('[data-testid^=\"queue-take-\"]').length", vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    assert_eq!(takes, 0, "a taken customer is not offered again");
    shot(&bruno, "day-03-queue-taken").await;

    let _ = ana.close().await;
    let _ = bruno.close().await;
    engine.stop();
}

#[actix_rt::test]
async fn agents_see_service_names_and_transfer_to_a_named_queue() {
    let Demo { db, service, engine, base, .. } = demo_server_with(Channel::Whatsapp, |c, _| {
        let billing = schema::models::Service::with_defaults("Cobrança", Channel::Whatsapp, chrono::Utc::now());
        billing.insert(c).unwrap();
    })
    .await;
    let name = schema::models::Service::find(&mut db.conn(), service).unwrap().name;
    let (_driver, port) = driver().await;
    let ana = browser(port, &[], json!({})).await;
    sign_in(&ana, &base, "ana").await;
    go_available(&ana).await;
    whatsapp_customer_writes(&base, "5511933334444", "Lúcia", "wamid.S1", "Quero pagar um boleto").await;
    let c = schema::store::open_conversation_for(&mut db.conn(), service, "5511933334444").unwrap().unwrap().id;
    click(&ana, &tid(&format!("conv-item-{c}"))).await;
    text_until(&ana, &tid("conv-service"), |t| t == format!("Serviço: {name}")).await;

    click(&ana, &tid("action-transfer")).await;
    let options = text_until(&ana, &tid("transfer-service"), |t| t.contains("Cobrança")).await;
    assert!(options.contains("Cobrança (WhatsApp)"), "the queue by its name and channel: {options:?}");
    assert!(!options.contains(&format!("{name} (")), "not the conversation's own service: {options:?}");
    shot(&ana, "day-04-transfer-by-name").await;
    let billing =
        schema::store::list_services(&mut db.conn()).unwrap().into_iter().find(|s| s.name == "Cobrança").unwrap();
    find(&ana, &tid("transfer-service")).await.select_by_value(&billing.id.to_string()).await.unwrap();
    click(&ana, &tid("transfer-confirm")).await;
    text_until(&ana, &tid("tab-active-count"), |t| t.trim() == "0").await;
    let row = schema::models::Conversation::find(&mut db.conn(), c).unwrap();
    assert_eq!(row.service_id, billing.id, "the conversation went to the queue chosen by name");

    let _ = ana.close().await;
    engine.stop();
}

#[actix_rt::test]
async fn a_conversation_handed_over_is_announced_and_its_history_names_who_handled_it() {
    let Demo { db, service, engine, base, .. } = demo_server_with(Channel::Whatsapp, |_, _| {}).await;
    let (_driver, port) = driver().await;
    let ana = browser(port, &[], json!({})).await;
    let bruno = browser(port, &[], json!({})).await;
    sign_in(&ana, &base, "ana").await;
    sign_in(&bruno, &base, "bruno").await;
    go_available(&ana).await;

    // Automatic distribution gives the customer to Ana, the only one available.
    whatsapp_customer_writes(&base, "5511944445555", "Paulo", "wamid.H1", "Preciso trocar um produto").await;
    let c = schema::store::open_conversation_for(&mut db.conn(), service, "5511944445555").unwrap().unwrap().id;
    let item = tid(&format!("conv-item-{c}"));
    click(&ana, &item).await;
    find(&ana, &tid("composer-input")).await.send_keys("Claro, qual produto?").await.unwrap();
    click(&ana, &tid("composer-send")).await;
    text_until(&ana, &tid("message-list"), |t| t.contains("qual produto")).await;

    // Bruno, looking at his summary, gets it by transfer: a sound, the count in the title, the
    // highlighted item and a notice naming Ana.
    go_available(&bruno).await;
    click(&ana, &tid("action-transfer")).await;
    let label = find(&ana, &tid("transfer-agent-bruno")).await.text().await.unwrap();
    find(&ana, &tid("transfer-agent")).await.select_by_label(&label).await.unwrap();
    click(&ana, &tid("transfer-confirm")).await;
    find(&bruno, &tid(&format!("conv-handed-{c}"))).await;
    text_until(&bruno, &tid("toasts"), |t| t.contains("Ana Souza transferiu um atendimento para você")).await;
    let title = bruno.title().await.unwrap();
    assert!(title.starts_with("(1)"), "the title counts it: {title:?}");
    shot(&bruno, "day-05-handed-over").await;

    // Opening it clears the highlight; the history says who had it and names Ana on her message.
    click(&bruno, &item).await;
    let history = text_until(&bruno, &tid("message-list"), |t| t.contains("transferiu para Você")).await;
    assert!(history.contains("Distribuído automaticamente para Ana Souza"), "{history}");
    assert!(history.contains("Ana Souza transferiu para Você"), "{history}");
    let ana_said = bruno
        .execute(
            "return [...document.querySelectorAll('.msg-out')].map((m) => m.querySelector('.msg-who').textContent).join('|')",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(ana_said, json!("Ana Souza"), "her reply carries her name, not a bare 'Atendente'");
    let handed = bruno
        .execute(&format!("return !!document.querySelector('[data-testid=\"conv-handed-{c}\"]')"), vec![])
        .await
        .unwrap();
    assert_eq!(handed, json!(false), "opened, it is no longer new");
    shot(&bruno, "day-06-history-names").await;

    let _ = ana.close().await;
    let _ = bruno.close().await;
    engine.stop();
}
