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
    Demo, browser, click, demo_server_with, driver, find, go_available, js, shot, sign_in, text_until, tid,
    whatsapp_customer_writes,
};

/// The raw requests a fake provider received: path and body.
type Requests = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A provider's API on a free port: every request kept, each answered by `answer(path)`.
async fn fake_provider(answer: fn(&str) -> HttpResponse) -> (String, Requests) {
    let seen: Requests = Arc::default();
    let kept = seen.clone();
    let server = HttpServer::new(move || {
        let kept = kept.clone();
        App::new().app_data(aw::PayloadConfig::new(32 << 20)).default_service(aw::to(
            move |req: actix_web::HttpRequest, body: aw::Bytes| {
                let kept = kept.clone();
                async move {
                    kept.lock().unwrap().push((req.path().to_owned(), body.to_vec()));
                    answer(req.path())
                }
            },
        ))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let base = format!("http://127.0.0.1:{}", server.addrs()[0].port());
    actix_rt::spawn(server.run());
    (base, seen)
}

/// A Graph API that refuses every message at once, as WhatsApp does outside the 24-hour window
/// (HTTP 400, error 131047).
async fn refusing_graph() -> (String, Requests) {
    fake_provider(|_| {
        HttpResponse::BadRequest().json(json!({"error": {
            "message": "Re-engagement message", "type": "OAuthException", "code": 131047,
            "error_data": {"messaging_product": "whatsapp",
                           "details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number."},
            "fbtrace_id": "AbCdEf"}}))
    })
    .await
}

/// A Graph API that takes every upload and message.
async fn accepting_graph() -> (String, Requests) {
    fake_provider(|path| {
        if path.ends_with("/media") {
            HttpResponse::Ok().json(json!({"id": "media-1"}))
        } else {
            HttpResponse::Ok().json(json!({"messaging_product": "whatsapp",
                "contacts": [{"input": "x", "wa_id": "x"}], "messages": [{"id": "wamid.OUT1"}]}))
        }
    })
    .await
}

/// Twilio's Messages API taking every SMS.
async fn accepting_twilio() -> (String, Requests) {
    fake_provider(|_| HttpResponse::Created().json(json!({"sid": "SMdesk1", "status": "queued"}))).await
}

/// Points `service`'s provider API at `base` (a fake).
fn point_at(c: &mut schema::PgConnection, service: schema::ServiceId, base: &str) {
    let row = schema::models::Service::find(c, service).unwrap();
    let mut provider = row.provider;
    provider["api_base_url"] = json!(base);
    let change = ServiceChangeset { provider: Some(provider), ..Default::default() };
    schema::store::update_service(c, service, &change).unwrap();
}

#[actix_rt::test]
async fn a_reply_the_provider_refuses_turns_failed_live_in_every_tab() {
    let (graph, seen) = refusing_graph().await;
    let Demo { db, service, engine, base, .. } =
        demo_server_with(Channel::Whatsapp, |c, service| point_at(c, service, &graph)).await;

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
    assert_eq!(sent.len(), 1, "one request, no retry of a refusal");
    assert_eq!(sent[0].0, "/v21.0/100000000000001/messages");
    let reply: Value = serde_json::from_slice(&sent[0].1).unwrap();
    assert_eq!(reply["to"], "5511912345678");
    assert_eq!(reply["type"], "text");
    assert_eq!(reply["text"]["body"], "Claro! Qual o número do pedido?");

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

#[actix_rt::test]
async fn the_left_column_fits_from_1280x720_to_1920x1080() {
    // The database lives as long as `_db`.
    let Demo { db: _db, engine, base, .. } = queue_by_hand().await;
    whatsapp_customer_writes(
        &base,
        "5511955556666",
        "Maria Aparecida dos Santos Figueiredo de Albuquerque (Loja Centro)",
        "wamid.L1",
        "Oi",
    )
    .await;
    let (_driver, port) = driver().await;
    for (w, h) in [(1280, 720), (1920, 1080)] {
        let desk = browser(port, &[format!("--window-size={w},{h}")], json!({})).await;
        sign_in(&desk, &base, "ana").await;
        find(&desk, "[data-testid^=\"queue-row-\"]").await;
        click(&desk, "details.filter-box summary").await;
        click(&desk, &tid("queue-filter-name")).await;
        let fits = js(
            &desk,
            "const col = document.querySelector('.col-left'); const edge = col.getBoundingClientRect().right;
             const over = [...col.querySelectorAll('input, select, button, .q-main, .channel-btn')]
               .filter((e) => e.getBoundingClientRect().right > edge + 0.5).map((e) => e.dataset.testid || e.className);
             return { scrollLeft: col.scrollLeft, wider: col.scrollWidth > col.clientWidth, over };",
        )
        .await;
        assert_eq!(fits["scrollLeft"], 0, "{w}×{h}: focusing a filter does not scroll the column sideways");
        assert_eq!(fits["wider"], false, "{w}×{h}: nothing is wider than the column: {fits}");
        assert_eq!(fits["over"], json!([]), "{w}×{h}: every control inside the column: {fits}");
        shot(&desk, &format!("day-07-left-column-{w}x{h}")).await;
        let _ = desk.close().await;
    }
    engine.stop();
}

#[actix_rt::test]
async fn presence_is_one_control_and_a_lost_connection_blocks_sending_but_keeps_the_draft() {
    let Demo { db, service, engine, base, .. } = demo_server_with(Channel::Whatsapp, |_, _| {}).await;
    let relay = browser::Relay::start(&base).await;
    let (_driver, port) = driver().await;
    let ana = browser(port, &[], json!({})).await;
    sign_in(&ana, &relay.base, "ana").await;

    // First sign-in: one presence control, and a hint that customers come only when available.
    text_until(&ana, &tid("presence-hint"), |t| t.contains("Fique disponível para começar a atender")).await;
    let separate = js(&ana, "return !!document.querySelector('[data-testid=\"presence-available\"]')").await;
    assert_eq!(separate, json!(false), "no second presence button beside the control");
    shot(&ana, "day-08-first-sign-in").await;
    click(&ana, &tid("presence-hint-available")).await;
    text_until(&ana, &tid("presence-status"), |t| t.contains("Disponível")).await;
    let hint = js(&ana, "return document.querySelector('[data-testid=\"presence-hint\"]').hidden").await;
    assert_eq!(hint, json!(true), "available: the hint is gone");

    whatsapp_customer_writes(&base, "5511966667777", "Tereza", "wamid.C1", "Alguém aí?").await;
    let c = schema::store::open_conversation_for(&mut db.conn(), service, "5511966667777").unwrap().unwrap().id;
    click(&ana, &tid(&format!("conv-item-{c}"))).await;
    find(&ana, &tid("composer-input")).await.send_keys("Um momento, por favor").await.unwrap();

    // The network goes: a banner says so, sending is off, the draft stays.
    relay.cut();
    text_until(&ana, &tid("connection-banner"), |t| t.contains("Sem conexão com o servidor")).await;
    let state = js(
        &ana,
        "return { send: document.querySelector('[data-testid=\"composer-send\"]').disabled,
                  draft: document.querySelector('[data-testid=\"composer-input\"]').value }",
    )
    .await;
    assert_eq!(state, json!({"send": true, "draft": "Um momento, por favor"}));
    shot(&ana, "day-09-connection-lost").await;

    // It comes back: the banner goes, the draft is sent.
    relay.restore();
    for _ in 0..100 {
        if js(&ana, "return document.querySelector('[data-testid=\"connection-banner\"]').hidden").await == json!(true)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    click(&ana, &tid("composer-send")).await;
    text_until(&ana, &tid("message-list"), |t| t.contains("Um momento, por favor")).await;
    let out = schema::store::messages_of(&mut db.conn(), c).unwrap();
    assert!(out.iter().any(|m| m.body.as_deref() == Some("Um momento, por favor")), "sent once back online");

    let _ = ana.close().await;
    engine.stop();
}

#[actix_rt::test]
async fn irreversible_actions_ask_first_and_the_email_composer_keeps_enter_for_new_lines() {
    let Demo { db, service, engine, base, .. } = demo_server_with(Channel::Whatsapp, |c, service| {
        let change = ServiceChangeset { allow_cancel: Some(false), ..Default::default() };
        schema::store::update_service(c, service, &change).unwrap();
    })
    .await;
    let (_driver, port) = driver().await;
    let ana = browser(port, &[], json!({})).await;
    sign_in(&ana, &base, "ana").await;
    go_available(&ana).await;
    whatsapp_customer_writes(&base, "5511977778888", "Jorge", "wamid.R1", "Oi").await;
    let c = schema::store::open_conversation_for(&mut db.conn(), service, "5511977778888").unwrap().unwrap().id;
    click(&ana, &tid(&format!("conv-item-{c}"))).await;
    find(&ana, &tid("action-return")).await;
    let cancel = js(&ana, "return !!document.querySelector('[data-testid=\"action-cancel\"]')").await;
    assert_eq!(cancel, json!(false), "this service does not allow cancelling: no cancel button");

    // Returning to the queue asks first; going back keeps the conversation.
    click(&ana, &tid("action-return")).await;
    text_until(&ana, &tid("confirm-return"), |t| t.contains("Devolver à fila")).await;
    shot(&ana, "day-10-confirm-return").await;
    click(&ana, &tid("confirm-return-keep")).await;
    text_until(&ana, &tid("tab-active-count"), |t| t.trim() == "1").await;
    assert_eq!(
        schema::models::Conversation::find(&mut db.conn(), c).unwrap().state,
        schema::ConversationState::InService
    );
    click(&ana, &tid("action-return")).await;
    click(&ana, &tid("confirm-return-confirm")).await;
    text_until(&ana, &tid("tab-active-count"), |t| t.trim() == "0").await;

    // An email: Enter makes new lines, Ctrl+Enter sends the letter.
    let email = schema::store::list_services(&mut db.conn()).unwrap().into_iter().find(|s| s.channel == Channel::Email);
    let email = email.unwrap().id;
    browser::email_customer_writes(&base, email, "cliente@exemplo.com.br", "Segunda via", "Preciso da segunda via.")
        .await;
    let e = schema::store::open_conversation_for(&mut db.conn(), email, "cliente@exemplo.com.br").unwrap().unwrap().id;
    click(&ana, &tid(&format!("conv-item-{e}"))).await;
    let input = find(&ana, &tid("composer-input")).await;
    input.send_keys("Prezado cliente,\u{E007}segue a segunda via.").await.unwrap();
    let typed = js(&ana, "return document.querySelector('[data-testid=\"composer-input\"]').value").await;
    assert_eq!(typed, json!("Prezado cliente,\nsegue a segunda via."), "Enter made a new line and sent nothing");
    input.send_keys("\u{E009}\u{E007}\u{E000}").await.unwrap();
    text_until(&ana, &tid("message-list"), |t| t.contains("segue a segunda via")).await;
    let sent = schema::store::messages_of(&mut db.conn(), e).unwrap();
    let body = sent.iter().find(|m| m.direction == schema::MessageDirection::Out).and_then(|m| m.body.clone());
    assert_eq!(body.as_deref(), Some("Prezado cliente,\nsegue a segunda via."));

    let _ = ana.close().await;
    engine.stop();
}

#[actix_rt::test]
async fn errors_dates_states_and_the_copy_speak_the_desks_language() {
    let (graph, _) = refusing_graph().await;
    let Demo { db, service, engine, base, .. } =
        demo_server_with(Channel::Whatsapp, |c, service| point_at(c, service, &graph)).await;
    let (_driver, port) = driver().await;
    let ana = browser(port, &[], json!({})).await;
    let other_tab = browser(port, &[], json!({})).await;
    let bruno = browser(port, &[], json!({})).await;
    sign_in(&ana, &base, "ana").await;
    sign_in(&other_tab, &base, "ana").await;
    sign_in(&bruno, &base, "bruno").await; // signed in, never available
    go_available(&ana).await;
    whatsapp_customer_writes(&base, "5511988889999", "Helena", "wamid.E1", "Bom dia").await;
    let c = schema::store::open_conversation_for(&mut db.conn(), service, "5511988889999").unwrap().unwrap().id;
    let item = tid(&format!("conv-item-{c}"));
    click(&ana, &item).await;
    click(&other_tab, &item).await;

    // Dates as the desk writes them: dd/mm/aaaa, typed and shown.
    let stamp = js(&ana, "return document.querySelector('.msg .msg-time').title").await;
    let stamp = stamp.as_str().unwrap().to_owned();
    let today = chrono::Local::now().format("%d/%m/%Y").to_string();
    assert!(stamp.starts_with(&today), "a message's date in pt-BR order: {stamp:?} (today {today})");
    let due = find(&ana, &tid("due-date-input")).await;
    assert_eq!(due.attr("placeholder").await.unwrap().as_deref(), Some("dd/mm/aaaa hh:mm"));
    due.send_keys("25/12/2026 14:30").await.unwrap();
    click(&ana, &tid("due-date-save")).await;
    text_until(&ana, &tid("toasts"), |t| !t.is_empty()).await;
    let row = schema::models::Conversation::find(&mut db.conn(), c).unwrap();
    let local = row.due_at.expect("due date saved").with_timezone(&chrono::Local);
    assert_eq!(local.format("%d/%m/%Y %H:%M").to_string(), "25/12/2026 14:30");
    click(&ana, "details.filter-box summary").await;
    let filter = find(&ana, &tid("queue-filter-date")).await;
    assert_eq!(filter.attr("placeholder").await.unwrap().as_deref(), Some("dd/mm/aaaa"));
    filter.send_keys("31/02/2026\u{E004}").await.unwrap();
    let invalid =
        js(&ana, "return document.querySelector('[data-testid=\"queue-filter-date\"]').getAttribute('aria-invalid')")
            .await;
    assert_eq!(invalid, json!("true"), "no 31 February");

    // A transfer to a colleague who is not available says so, by name.
    click(&ana, &tid("action-transfer")).await;
    let label = find(&ana, &tid("transfer-agent-bruno")).await.text().await.unwrap();
    assert!(label.contains("Indisponível"), "{label:?}");
    find(&ana, &tid("transfer-agent")).await.select_by_label(&label).await.unwrap();
    click(&ana, &tid("transfer-confirm")).await;
    text_until(&ana, &tid("transfer-error"), |t| t.contains("Bruno Lima está indisponível no momento")).await;
    shot(&ana, "day-11-transfer-to-unavailable").await;
    ana.execute("document.querySelector('[data-testid=\"transfer-dialog\"]').close()", vec![]).await.unwrap();

    // A refused reply; the copy names the agent and marks it.
    find(&ana, &tid("composer-input")).await.send_keys("Vou verificar").await.unwrap();
    click(&ana, &tid("composer-send")).await;
    find(&ana, "[data-testid=\"message-list\"] .msg-failed").await;
    click(&ana, &tid("copy-conversation")).await;
    let copied = js(&ana, "return window.__omnirouteLastCopy").await;
    let copied = copied.as_str().unwrap().to_owned();
    assert!(copied.contains("Ana Souza: Vou verificar [Falha no envio"), "{copied}");
    assert!(copied.contains("Helena: Bom dia"), "{copied}");
    assert!(!copied.contains("Você"), "a copy names people: {copied}");

    // Concluded in one tab: the other shows the state in words, not "concluded".
    click(&ana, &tid("action-conclude")).await;
    click(&ana, &tid("conclude-confirm")).await;
    text_until(&other_tab, &tid("conv-state"), |t| t == "Concluído").await;
    text_until(&other_tab, &tid("conv-notice"), |t| t.contains("(concluído)")).await;
    shot(&other_tab, "day-12-concluded-elsewhere").await;

    let _ = ana.close().await;
    let _ = other_tab.close().await;
    let _ = bruno.close().await;
    engine.stop();
}

#[actix_rt::test]
async fn the_emoji_picker_has_the_full_set_and_finds_them_in_portuguese() {
    let Demo { db, service, engine, base, .. } = demo_server_with(Channel::Whatsapp, |_, _| {}).await;
    let (_driver, port) = driver().await;
    let ana = browser(port, &[], json!({})).await;
    sign_in(&ana, &base, "ana").await;
    go_available(&ana).await;
    whatsapp_customer_writes(&base, "5511990001111", "Beatriz", "wamid.EM1", "Chegou, obrigada!").await;
    let c = schema::store::open_conversation_for(&mut db.conn(), service, "5511990001111").unwrap().unwrap().id;
    click(&ana, &tid(&format!("conv-item-{c}"))).await;
    find(&ana, &tid("composer-input")).await.send_keys("Por nada ").await.unwrap();

    click(&ana, &tid("emoji-picker")).await;
    click(&ana, &tid("emoji-group-people")).await;
    find(&ana, "[data-testid=\"emoji-grid\"] button[data-emoji=\"👍\"]").await;
    let people = js(&ana, "return document.querySelectorAll('[data-testid=\"emoji-grid\"] button.emoji').length").await;
    assert!(people.as_u64().unwrap() > 200, "the whole group, not a fixed handful: {people}");
    click(&ana, &tid("emoji-group-flags")).await;
    find(&ana, "[data-testid=\"emoji-grid\"] button[data-emoji=\"🇧🇷\"]").await;

    // Found by a Portuguese word, without its accent; Enter takes the first.
    find(&ana, &tid("emoji-search")).await.send_keys("coracao vermelho").await.unwrap();
    find(&ana, "[data-testid=\"emoji-grid\"] button[data-emoji=\"❤️\"]").await;
    shot(&ana, "day-13-emoji-search").await;
    find(&ana, &tid("emoji-search")).await.send_keys("\u{E007}").await.unwrap();
    let typed = js(&ana, "return document.querySelector('[data-testid=\"composer-input\"]').value").await;
    assert_eq!(typed, json!("Por nada ❤️"));

    // The recent ones come first next time.
    click(&ana, &tid("emoji-picker")).await;
    click(&ana, &tid("emoji-group-recent")).await;
    find(&ana, "[data-testid=\"emoji-grid\"] button[data-emoji=\"❤️\"]").await;
    let none = js(&ana, "return !!document.querySelector('[data-testid=\"emoji-none\"]')").await;
    assert_eq!(none, json!(false));

    let _ = ana.close().await;
    engine.stop();
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[actix_rt::test]
async fn a_voice_note_recorded_in_the_desk_reaches_whatsapp_as_ogg_opus() {
    let (graph, seen) = accepting_graph().await;
    let Demo { db, service, engine, base, .. } =
        demo_server_with(Channel::Whatsapp, |c, service| point_at(c, service, &graph)).await;
    let (_driver, port) = driver().await;
    // Chromium's fake microphone (a tone), allowed without asking.
    let mic = ["--use-fake-device-for-media-stream".to_owned(), "--use-fake-ui-for-media-stream".to_owned()];
    let ana = browser(port, &mic, json!({})).await;
    sign_in(&ana, &base, "ana").await;
    go_available(&ana).await;
    whatsapp_customer_writes(&base, "5511991112222", "Sérgio", "wamid.AU1", "Pode mandar um áudio?").await;
    let c = schema::store::open_conversation_for(&mut db.conn(), service, "5511991112222").unwrap().unwrap().id;
    click(&ana, &tid(&format!("conv-item-{c}"))).await;

    click(&ana, &tid("record-audio")).await;
    text_until(&ana, &tid("record-time"), |t| t >= "00:02").await;
    shot(&ana, "day-14-recording").await;
    click(&ana, &tid("record-send")).await;

    // The provider got Opus in Ogg, then an audio message pointing at it.
    let mut requests = Vec::new();
    for _ in 0..100 {
        requests = seen.lock().unwrap().clone();
        if requests.iter().any(|(p, _)| p.ends_with("/messages")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let upload = requests.iter().find(|(p, _)| p.ends_with("/media")).expect("an upload");
    assert!(contains(&upload.1, b"name=\"type\"\r\n\r\naudio/ogg\r\n"), "declared as audio/ogg");
    assert!(contains(&upload.1, b"OggS") && contains(&upload.1, b"OpusHead"), "an Ogg Opus file");
    assert!(!contains(&upload.1, &[0x1A, 0x45, 0xDF, 0xA3]), "no WebM left in it");
    let message = requests.iter().find(|(p, _)| p.ends_with("/messages")).unwrap();
    let message: serde_json::Value = serde_json::from_slice(&message.1).unwrap();
    assert_eq!(message["type"], "audio");
    assert_eq!(message["audio"]["id"], "media-1");
    assert_eq!(message["to"], "5511991112222");
    text_until(&ana, &tid("message-list"), |t| t.contains(".webm") || t.contains("audio-")).await;
    find(&ana, "[data-testid=\"message-list\"] audio.msg-audio").await;

    let _ = ana.close().await;
    engine.stop();
}

#[actix_rt::test]
async fn a_contact_shared_on_whatsapp_is_registered_from_its_details() {
    let Demo { db, service, engine, base, .. } = demo_server_with(Channel::Whatsapp, |_, _| {}).await;
    let (_driver, port) = driver().await;
    let ana = browser(port, &[], json!({})).await;
    sign_in(&ana, &base, "ana").await;
    go_available(&ana).await;
    let shared = json!({"from": "5511993334444", "id": "wamid.CT1", "timestamp": "1764000000", "type": "contacts",
        "contacts": [{"name": {"formatted_name": "João Lima", "first_name": "João"},
                      "phones": [{"phone": "+55 11 98765-4321", "wa_id": "551187654321", "type": "CELL"}]}]});
    browser::whatsapp_customer_sends(&base, "5511993334444", "Renata", shared).await;
    let c = schema::store::open_conversation_for(&mut db.conn(), service, "5511993334444").unwrap().unwrap().id;
    click(&ana, &tid(&format!("conv-item-{c}"))).await;
    click(&ana, "[data-testid^=\"contact-details-\"]").await;
    text_until(&ana, &tid("contact-dialog"), |t| t.contains("João Lima")).await;
    click(&ana, &tid("contact-register")).await;
    text_until(&ana, &tid("contact-register-note"), |t| t.contains("Cadastrado nos contatos")).await;
    shot(&ana, "day-15-contact-registered").await;
    let contact = schema::store::whatsapp_contact_by_number(&mut db.conn(), "+5511987654321").unwrap();
    let contact = contact.expect("registered under its E.164 number, the ninth digit restored");
    assert_eq!(contact.name.as_deref(), Some("João Lima"));
    assert_eq!(contact.wa_id.as_deref(), Some("551187654321"), "WhatsApp's id kept as received");
    assert!(!contact.opted_in, "sharing a number is not opting in");

    // Once registered, registering again says so.
    ana.execute("document.querySelector('[data-testid=\"contact-dialog\"]').close()", vec![]).await.unwrap();
    click(&ana, "[data-testid^=\"contact-details-\"]").await;
    click(&ana, &tid("contact-register")).await;
    text_until(&ana, &tid("contact-register-note"), |t| t.contains("já está nos contatos")).await;

    let _ = ana.close().await;
    engine.stop();
}

#[actix_rt::test]
async fn an_agent_sends_an_email_from_a_template_and_an_sms_from_a_whatsapp_chat() {
    let (twilio, texts) = accepting_twilio().await;
    let Demo { db, service, engine, base, .. } = demo_server_with(Channel::Whatsapp, |c, _| {
        let now = chrono::Utc::now();
        schema::models::Customer {
            id: schema::CustomerId::new(),
            name: "Clara Mendes".into(),
            trade_name: None,
            cpf: None,
            cnpj: None,
            emails: vec!["clara@exemplo.com.br".into()],
            phones: vec!["+5511944440000".into()],
            notes: None,
            portfolio_agent_id: None,
            created_at: now,
            updated_at: now,
        }
        .insert(c)
        .unwrap();
        schema::models::EmailTemplate {
            id: schema::EmailTemplateId::new(),
            name: "Segunda via".into(),
            service_id: None,
            subject: "Sua segunda via".into(),
            body_text: "Olá {{customer_name}},\n{{body}}\nAtenciosamente".into(),
            body_html: None,
            created_at: now,
        }
        .insert(c)
        .unwrap();
        let sms = schema::store::list_services(c).unwrap().into_iter().find(|s| s.channel == Channel::Sms).unwrap();
        point_at(c, sms.id, &twilio);
    })
    .await;
    let (_driver, port) = driver().await;
    let ana = browser(port, &[], json!({})).await;
    sign_in(&ana, &base, "ana").await;
    go_available(&ana).await;
    whatsapp_customer_writes(&base, "5511944440000", "Clara", "wamid.OT1", "Preciso do boleto por e-mail").await;
    let chat = schema::store::open_conversation_for(&mut db.conn(), service, "5511944440000").unwrap().unwrap().id;
    click(&ana, &tid(&format!("conv-item-{chat}"))).await;

    // The email: to the customer's address, from a template, edited.
    click(&ana, &tid("action-email")).await;
    for _ in 0..50 {
        if find(&ana, &tid("email-to")).await.prop("value").await.unwrap().unwrap_or_default() == "clara@exemplo.com.br"
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let template = find(&ana, &tid("email-template")).await;
    template.select_by_label("Segunda via").await.unwrap();
    let subject = find(&ana, &tid("email-subject")).await.prop("value").await.unwrap();
    assert_eq!(subject.as_deref(), Some("Sua segunda via"), "the template fills the subject");
    find(&ana, &tid("email-body")).await.send_keys("Segue o boleto de dezembro.").await.unwrap();
    shot(&ana, "day-16-email-dialog").await;
    click(&ana, &tid("email-send")).await;
    text_until(&ana, &tid("toasts"), |t| t.contains("E-mail")).await;

    // The SMS: to the customer's phone.
    click(&ana, &tid("action-sms")).await;
    for _ in 0..50 {
        if find(&ana, &tid("sms-to")).await.prop("value").await.unwrap().unwrap_or_default() == "+5511944440000" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    find(&ana, &tid("sms-body")).await.send_keys("Enviamos o boleto para o seu e-mail.").await.unwrap();
    click(&ana, &tid("sms-send")).await;

    // Both went out as new conversations of hers, the chat still open.
    text_until(&ana, &tid("tab-active-count"), |t| t.trim() == "3").await;
    shot(&ana, "day-17-email-and-sms-sent").await;
    let email = schema::store::list_services(&mut db.conn()).unwrap().into_iter().find(|s| s.channel == Channel::Email);
    let email = email.unwrap().id;
    let mail = schema::store::open_conversation_for(&mut db.conn(), email, "clara@exemplo.com.br").unwrap();
    let mail = mail.expect("an email conversation for the customer's address");
    assert_eq!(mail.direction, schema::Direction::Outbound);
    let sent = schema::store::messages_of(&mut db.conn(), mail.id).unwrap();
    assert_eq!(sent[0].email_subject.as_deref(), Some("Sua segunda via"));
    assert!(sent[0].body.as_deref().unwrap_or("").contains("Segue o boleto de dezembro."), "{:?}", sent[0].body);
    let mut form = Vec::new();
    for _ in 0..50 {
        form = texts.lock().unwrap().clone();
        if !form.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (path, body) = form.first().expect("Twilio got the SMS");
    assert!(path.ends_with("/Messages.json"), "{path}");
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap();
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("To"), Some("+5511944440000"));
    assert_eq!(get("Body"), Some("Enviamos o boleto para o seu e-mail."));
    assert_eq!(
        schema::models::Conversation::find(&mut db.conn(), chat).unwrap().state,
        schema::ConversationState::InService,
        "the chat stays open"
    );

    let _ = ana.close().await;
    engine.stop();
}
