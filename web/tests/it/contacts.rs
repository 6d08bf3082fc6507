//! WhatsApp contacts through the API (C7, K6): numbers stored in E.164 however they were written,
//! one contact per number, found by name or number.

use serde_json::json;

use crate::api_support::World;

#[actix_rt::test]
async fn contacts_are_added_in_e164_once_per_number_and_found_by_name_or_number() {
    let w = World::start().await;
    let app = &w.app;
    let ana = app.login("ana").await;

    let made =
        app.post("/api/v1/contacts", Some(&ana), &json!({"phone": "(11) 98765-4321", "name": "Marina Costa"})).await;
    let made = made.ok(201).clone();
    assert_eq!(made["phone"], "+5511987654321");
    assert_eq!((made["opt_in"].clone(), made["opted_in_at"].clone()), (json!(false), json!(null)));
    // The same number as WhatsApp writes it (no ninth digit) is the same contact.
    let before = app.snapshot();
    app.post("/api/v1/contacts", Some(&ana), &json!({"phone": "551187654321"})).await.err(409, "contact_exists");
    app.post("/api/v1/contacts", Some(&ana), &json!({"phone": "ramal 2"})).await.err(400, "invalid_phone");
    app.post("/api/v1/contacts", Some(&ana), &json!({"phone": "+5511911112222", "wa_id": "55a"}))
        .await
        .err(400, "invalid_phone");
    app.post("/api/v1/contacts", Some(&ana), &json!({"phone": "+5511911112222", "extra": 1}))
        .await
        .err(400, "invalid_field");
    app.post("/api/v1/contacts", None, &json!({"phone": "+5511911112222"})).await.err(401, "unauthenticated");
    app.unchanged(&before, "refused contacts");

    let agreed = app
        .post("/api/v1/contacts", Some(&ana), &json!({"phone": "+55 21 3333-4444", "name": "Loja Rio", "opt_in": true}))
        .await;
    let agreed = agreed.ok(201).clone();
    assert_eq!(agreed["phone"], "+552133334444", "a landline keeps its eight digits");
    assert!(agreed["opted_in_at"].is_string(), "opting in is dated");

    let names = |v: &serde_json::Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect()
    };
    let all = app.get("/api/v1/contacts", Some(&ana)).await;
    assert_eq!(names(all.ok(200)), ["Loja Rio", "Marina Costa"]);
    let by_name = app.get("/api/v1/contacts?q=marina", Some(&ana)).await;
    assert_eq!(names(by_name.ok(200)), ["Marina Costa"]);
    let by_number = app.get("/api/v1/contacts?q=3333-44", Some(&ana)).await;
    assert_eq!(names(by_number.ok(200)), ["Loja Rio"]);
    let odd = app.get("/api/v1/contacts?q=50%25_off", Some(&ana)).await;
    assert_eq!(names(odd.ok(200)), Vec::<String>::new(), "LIKE's wildcards are plain characters");
    app.get("/api/v1/contacts?limit=0", Some(&ana)).await.err(400, "invalid_limit");
}
