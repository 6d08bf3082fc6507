//! Customers through the API (K1): one search box for name, trade name, email, phone, CPF or CNPJ
//! in any writing; CPF and CNPJ (the alphanumeric one too) checked by their digits, stored
//! normalised, shown formatted and masked in lists; name search through an index.

use diesel::RunQueryDsl;
use serde_json::{Value, json};

use crate::api_support::World;

fn names(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect()
}

#[actix_rt::test]
async fn customers_are_registered_checked_and_found_by_any_of_their_ids() {
    let w = World::start().await;
    let app = &w.app;
    let token = app.login("ana").await;
    let ana = token.as_str();

    let before = app.snapshot();
    let refused = [
        (json!({"name": "Ana", "cpf": "529.982.247-24"}), 422, "invalid_cpf"),
        (json!({"name": "Loja", "cnpj": "12.ABC.345/01DE-36"}), 422, "invalid_cnpj"),
        (json!({"name": "Ana", "phones": ["ramal 2"]}), 400, "invalid_phone"),
        (json!({"name": "Ana", "emails": ["ana.exemplo.com"]}), 400, "invalid_email"),
        (json!({"name": "   "}), 400, "invalid_field"),
        (json!({"cpf": "52998224725"}), 400, "invalid_field"),
    ];
    for (body, status, code) in refused {
        app.post("/api/v1/customers", Some(ana), &body).await.err(status, code);
    }
    app.unchanged(&before, "refused customers");

    let maria = app
        .post(
            "/api/v1/customers",
            Some(ana),
            &json!({"name": "Maria da Silva", "cpf": "529.982.247-25", "emails": ["Maria@Exemplo.com.br"],
                    "phones": ["(11) 98765-4321"]}),
        )
        .await;
    let maria = maria.ok(201).clone();
    assert_eq!(maria["cpf"], "529.982.247-25", "shown formatted");
    assert_eq!(maria["emails"], json!(["maria@exemplo.com.br"]));
    assert_eq!(maria["phones"], json!(["+5511987654321"]));
    let loja = app
        .post(
            "/api/v1/customers",
            Some(ana),
            &json!({"name": "Comercial Ltda", "trade_name": "Loja Azul", "cnpj": "12abc34501de35"}),
        )
        .await;
    assert_eq!(loja.ok(201)["cnpj"], "12.ABC.345/01DE-35", "the alphanumeric CNPJ, upper case");
    app.post("/api/v1/customers", Some(ana), &json!({"name": "Outra Maria", "cpf": "52998224725"}))
        .await
        .err(409, "customer_exists");

    let find = |q: &str| {
        let q = q
            .replace(' ', "%20")
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('@', "%40")
            .replace('(', "%28")
            .replace(')', "%29");
        async move { app.get(&format!("/api/v1/customers?q={q}"), Some(ana)).await }
    };
    for q in [
        "da silva",
        "MARIA",
        "52998224725",
        "529.982.247-25",
        "maria@exemplo.com.br",
        "+55 11 98765-4321",
        "551187654321",
    ] {
        assert_eq!(names(find(q).await.ok(200)), ["Maria da Silva"], "found by {q}");
    }
    for q in ["loja azul", "12.ABC.345/01DE-35", "comercial"] {
        assert_eq!(names(find(q).await.ok(200)), ["Comercial Ltda"], "found by {q}");
    }
    let listed = find("maria").await;
    assert_eq!(listed.ok(200)[0]["cpf"], "***.982.247-**", "masked in a list");
    assert!(names(find("50%_off").await.ok(200)).is_empty(), "wildcards are plain characters");
    app.get("/api/v1/customers?q=ab", Some(ana)).await.err(400, "invalid_query");
    assert_eq!(names(app.get("/api/v1/customers", Some(ana)).await.ok(200)), ["Comercial Ltda", "Maria da Silva"]);
    app.get("/api/v1/customers?q=maria", None).await.err(401, "unauthenticated");

    // Their page shows the CPF whole; a change normalises like a registration.
    let id = maria["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/api/v1/customers/{id}"), Some(ana)).await.ok(200)["cpf"], "529.982.247-25");
    let changed = app
        .patch(&format!("/api/v1/customers/{id}"), Some(ana), &json!({"cpf": null, "phones": ["11 3333-4444"]}))
        .await;
    let changed = changed.ok(200).clone();
    assert_eq!((changed["cpf"].clone(), changed["phones"].clone()), (json!(null), json!(["+551133334444"])));
    app.patch(&format!("/api/v1/customers/{id}"), Some(ana), &json!({"cnpj": "11.222.333/0001-82"}))
        .await
        .err(422, "invalid_cnpj");
    app.get("/api/v1/customers/00000000-0000-0000-0000-000000000000", Some(ana)).await.err(404, "not_found");
}

#[actix_rt::test]
async fn a_name_search_is_served_by_the_trigram_index() {
    let w = World::start().await;
    let mut conn = w.app.conn();
    diesel::sql_query("SET enable_seqscan = off").execute(&mut conn).unwrap();
    #[derive(diesel::QueryableByName)]
    struct Plan {
        #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
        line: String,
    }
    let plan: Vec<Plan> =
        diesel::sql_query("EXPLAIN SELECT id FROM customers WHERE name ILIKE '%silva%' OR trade_name ILIKE '%silva%'")
            .load(&mut conn)
            .unwrap();
    let plan: Vec<String> = plan.into_iter().map(|p| p.line).collect();
    assert!(plan.iter().any(|l| l.contains("customers_name_trgm_idx")), "{plan:#?}");
    assert!(plan.iter().any(|l| l.contains("customers_trade_name_trgm_idx")), "{plan:#?}");
}
