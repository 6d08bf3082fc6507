//! The customer chat widget in a real headless Chromium (Debian's chromium + chromium-driver),
//! against a real server and database: a customer opens `/webchat/{service_id}`, types a name and
//! email and a message; the agent (automatic distribution) answers through the REST API and the
//! answer appears on the page live; after a reload the page resumes the same conversation with the
//! whole history; a voice note recorded with a (fake) microphone arrives as audio. Screenshots of every step go to `target/e2e/`.

use std::time::Duration;

use fantoccini::{Client, Locator};
use schema::{Channel, MessageStatus, store};
use serde_json::{Value, json};

mod browser;
use browser::{Demo, browser, click, demo_server, driver, find, shot, text_until};

/// The widget's elements are found by their id.
fn tid(id: &str) -> String {
    format!("#{id}")
}

/// Chromium in `lang`, with a fake microphone granted without a prompt (the page records a
/// real voice note).
async fn browser_in(port: u16, lang: &str) -> fantoccini::Client {
    let args = [
        "--use-fake-ui-for-media-stream".to_owned(),
        "--use-fake-device-for-media-stream".to_owned(),
        format!("--lang={lang}"),
    ];
    browser(port, &args, json!({"intl.accept_languages": lang})).await
}

/// Waits until an element's attribute has this value.
async fn text_until_attr(c: &Client, id: &str, attr: &str, value: &str) {
    for _ in 0..100 {
        if find(c, &tid(id)).await.attr(attr).await.ok().flatten().as_deref() == Some(value) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{id}[{attr}] never became {value:?}");
}

/// Whether an element is not displayed.
async fn hidden(c: &Client, id: &str) -> bool {
    !find(c, &tid(id)).await.is_displayed().await.unwrap()
}

/// Waits until an element is displayed (or not).
async fn shown_until(c: &Client, id: &str, displayed: bool) {
    for _ in 0..100 {
        if hidden(c, id).await != displayed {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{id} never became {}", if displayed { "visible" } else { "hidden" });
}

/// Signs an agent in through the API and makes them available; returns the token.
async fn agent_ready(base: &str, login: &str) -> String {
    let client = awc::Client::new();
    let mut res = client
        .post(format!("{base}api/v1/auth/login"))
        .send_json(&json!({"login": login, "password": web::boot::seed::demo_password(login)}))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let token = res.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    let res = client
        .put(format!("{base}api/v1/me/presence"))
        .bearer_auth(&token)
        .send_json(&json!({"status": "available"}))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    token
}

#[actix_rt::test]
async fn a_customer_chats_on_the_page_gets_the_agents_answer_live_and_keeps_it_after_a_reload() {
    let Demo { db, service, engine, state, base } = demo_server(Channel::Webchat).await;
    web::channels::outbound::spawn(state.clone(), state.outbox.clone());
    let ana = agent_ready(&base, "ana").await;

    let (_driver, port) = driver().await;
    let page = browser_in(port, "en-US").await;
    page.goto(&format!("{base}webchat/{service}")).await.unwrap();
    find(&page, &tid("name")).await;
    assert!(hidden(&page, "conversation").await, "only the start form at first");
    shot(&page, "webchat-01-start-form").await;

    // A wrong email is caught on the page; then the chat starts.
    find(&page, &tid("name")).await.send_keys("Marina Costa").await.unwrap();
    find(&page, &tid("email")).await.send_keys("marina@").await.unwrap();
    click(&page, &tid("start-button")).await;
    text_until(&page, &tid("email-error"), |t| !t.trim().is_empty()).await;
    shot(&page, "webchat-02-invalid-email").await;
    find(&page, &tid("email")).await.send_keys("example.com").await.unwrap();
    click(&page, &tid("start-button")).await;
    shown_until(&page, "start", false).await;
    shown_until(&page, "conversation", true).await;
    text_until(&page, &tid("status"), |t| !t.trim().is_empty()).await;

    // The customer writes; it is stored (acknowledged) and shown as sent.
    find(&page, &tid("text")).await.send_keys("Olá! Meu pedido 4521 não chegou.").await.unwrap();
    click(&page, &tid("send")).await;
    text_until(&page, &tid("messages"), |t| t.contains("pedido 4521")).await;
    let mut sent = false;
    for _ in 0..100 {
        sent = page
            .execute("return !!document.querySelector('#messages .msg.customer[data-id]:not(.sending)')", vec![])
            .await
            .unwrap()
            .as_bool()
            .unwrap_or(false);
        if sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sent, "the message is shown as stored once the server acknowledged it");
    let conversation = {
        let mut found = None;
        for _ in 0..100 {
            found = store::open_conversations(&mut db.conn()).unwrap().into_iter().find(|c| c.service_id == service);
            if found.as_ref().is_some_and(|c| c.current_agent_id.is_some()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        found.expect("the chat's conversation")
    };
    assert_eq!(conversation.customer_name.as_deref(), Some("Marina Costa"));
    let texts: Vec<String> =
        store::messages_of(&mut db.conn(), conversation.id).unwrap().into_iter().filter_map(|m| m.body).collect();
    assert_eq!(texts, ["Olá! Meu pedido 4521 não chegou."]);
    text_until(&page, &tid("status"), |t| t.contains("atendente") || t.contains("agent")).await;
    shot(&page, "webchat-03-customer-wrote").await;

    // The agent answers through the REST API: it appears on the page without a reload.
    let mut res = awc::Client::new()
        .post(format!("{base}api/v1/conversations/{}/messages", conversation.id))
        .bearer_auth(&ana)
        .send_json(&json!({"text": "Olá, Marina! Sou a Ana, vou verificar o pedido 4521."}))
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let reply: Value = res.json().await.unwrap();
    text_until(&page, &tid("messages"), |t| t.contains("Sou a Ana")).await;
    shot(&page, "webchat-04-agent-answered").await;
    // The desk's ticks: the page received and showed it.
    let reply_id: schema::MessageId = reply["id"].as_str().unwrap().parse().unwrap();
    let mut status = MessageStatus::Pending;
    for _ in 0..100 {
        status = schema::models::Message::find(&mut db.conn(), reply_id).unwrap().status;
        if status == MessageStatus::Read {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, MessageStatus::Read);

    // A reload resumes the same conversation with its history.
    page.refresh().await.unwrap();
    text_until(&page, &tid("messages"), |t| t.contains("pedido 4521") && t.contains("Sou a Ana")).await;
    shown_until(&page, "conversation", true).await;
    assert!(hidden(&page, "start").await, "no start form again");
    shot(&page, "webchat-05-after-reload").await;
    let open = store::open_conversations(&mut db.conn()).unwrap();
    assert_eq!(open.iter().filter(|c| c.service_id == service).count(), 1, "still one conversation");

    // A voice note: record with the (fake) microphone, stop, and it is sent as audio.
    click(&page, &tid("record")).await;
    text_until_attr(&page, "record", "aria-pressed", "true").await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // something to record
    click(&page, &tid("record")).await;
    let mut audio = None;
    for _ in 0..100 {
        audio = store::messages_of(&mut db.conn(), conversation.id)
            .unwrap()
            .into_iter()
            .find(|m| m.kind == schema::MessageKind::Audio);
        if audio.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let audio = audio.expect("the voice note is stored as an audio message");
    let files = store::attachments_of(&mut db.conn(), audio.id).unwrap();
    assert_eq!(files.len(), 1);
    assert!(files[0].content_type.starts_with("audio/") && files[0].size_bytes > 0, "{:?}", files[0]);
    find(&page, &tid("messages")).await.find(Locator::Css("audio")).await.expect("a player for the voice note");
    shot(&page, "webchat-06-voice-note").await;

    let _ = page.close().await;

    // A Brazilian browser gets the page in Portuguese.
    let pt = browser_in(port, "pt-BR").await;
    pt.goto(&format!("{base}webchat/{service}")).await.unwrap();
    text_until(&pt, &tid("start-button"), |t| t == "Iniciar conversa").await;
    text_until(&pt, &tid("title"), |t| t == "Fale conosco").await;
    shot(&pt, "webchat-07-pt-br").await;
    let _ = pt.close().await;
    engine.stop();
}
