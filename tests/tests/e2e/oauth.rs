//! The SCIM OAuth 2.0 server (OKTA.md §6, the seed's Step 5) through the gateway: the
//! whole authorization-code flow driven as Okta's admin console and an admin's browser
//! would, the same with an independent OAuth client library (`oauth2`), the grants
//! page, and every way the server must say no.

use std::time::Duration;

use closedloop_tests::harness::{
    EU_APP, EU_SCIM_CLIENT_ID, EU_SCIM_CLIENT_SECRET, Scim, TestStack, TestWorker, US_API, US_APP,
    US_SCIM_CLIENT_ID, US_SCIM_CLIENT_SECRET, Workspace, okta_callback, pg_connect, redis_prefix,
    worker_config,
};
use closedloop_tests::redirect::{callback, location, path_of, query_of};
use closedloop_tests::region::Region;
use closedloop_tests::web::hidden;
use reqwest::Method;
use reqwest::header::{CACHE_CONTROL, COOKIE, LOCATION};
use serde_json::{Value, json};
use shared::scope::Scope;

const AUTHORIZE: &str = "/api/okta/scim/oauth/authorize";
const TOKEN: &str = "/api/okta/scim/oauth/token";
const GRANTS_PAGE: &str = "/integrations/okta/provisioning";
const ALL_SCOPES: &str = "scim.read scim.write entitlements.read";

/// An authorization request's parameters.
struct Ask<'a> {
    region: Region,
    state: &'a str,
    scope: Option<&'a str>,
    challenge: Option<&'a str>,
}

impl<'a> Ask<'a> {
    fn new(region: Region) -> Self {
        Self {
            region,
            state: "okta-state-1",
            scope: Some(ALL_SCOPES),
            challenge: None,
        }
    }

    fn params(&self) -> Vec<(&'static str, String)> {
        let mut p = vec![
            ("response_type", "code".to_owned()),
            ("client_id", self.region.scim_client().0.to_owned()),
            ("redirect_uri", callback()),
            ("state", self.state.to_owned()),
        ];
        if let Some(s) = self.scope {
            p.push(("scope", s.to_owned()));
        }
        if let Some(c) = self.challenge {
            p.push(("code_challenge", c.to_owned()));
            p.push(("code_challenge_method", "S256".to_owned()));
        }
        p
    }
}

fn html_text(s: &str) -> String {
    s.replace('\'', "&#39;")
}

async fn authorize(
    stack: &TestStack,
    region: Region,
    params: &[(&str, String)],
) -> reqwest::Response {
    stack
        .get(region.api(), AUTHORIZE)
        .query(params)
        .send()
        .await
        .expect("authorize sent")
}

/// Runs `/authorize` and opens the consent page with `cookie`; returns the page's HTML.
async fn consent_page(stack: &TestStack, ask: &Ask<'_>, cookie: &str) -> String {
    let r = authorize(stack, ask.region, &ask.params()).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    let consent = location(&r);
    let page = stack
        .get(ask.region.app(), &path_of(&consent))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    page.text().await.unwrap()
}

/// Submits the consent form shown in `html`.
async fn decide(
    stack: &TestStack,
    region: Region,
    cookie: &str,
    html: &str,
    decision: &str,
) -> reqwest::Response {
    stack
        .request(Method::POST, region.app(), "/oauth/consent")
        .header(COOKIE, cookie)
        .form(&[
            ("request", hidden(html, "request").unwrap()),
            ("csrf", hidden(html, "csrf").unwrap()),
            ("decision", decision.to_owned()),
        ])
        .send()
        .await
        .unwrap()
}

/// The whole browser part: an authorization code for `ask`, approved by `cookie`.
async fn approved_code(stack: &TestStack, ask: &Ask<'_>, cookie: &str) -> String {
    let html = consent_page(stack, ask, cookie).await;
    let r = decide(stack, ask.region, cookie, &html, "approve").await;
    assert_eq!(r.status(), 303);
    let back = location(&r);
    assert!(back.starts_with(&callback()), "{back}");
    let q = query_of(&back);
    assert_eq!(q["state"], ask.state);
    q["code"].clone()
}

/// A token request with `client_secret_basic`.
async fn token(stack: &TestStack, region: Region, form: &[(&str, &str)]) -> (u16, Value) {
    token_with(
        stack,
        region,
        form,
        Some((region.scim_client().0, region.scim_client().1)),
    )
    .await
}

async fn token_with(
    stack: &TestStack,
    region: Region,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (u16, Value) {
    let mut req = stack.request(Method::POST, region.api(), TOKEN).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let r = req.send().await.unwrap();
    assert_eq!(
        r.headers().get(CACHE_CONTROL).map(|v| v.as_bytes()),
        Some(&b"no-store"[..]),
        "every token endpoint answer is no-store"
    );
    let status = r.status().as_u16();
    if status == 401 {
        assert!(
            r.headers().contains_key("www-authenticate"),
            "401 carries WWW-Authenticate"
        );
    }
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn exchange(
    stack: &TestStack,
    region: Region,
    code: &str,
    verifier: Option<&str>,
) -> (u16, Value) {
    let redirect = callback();
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect.as_str()),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    token(stack, region, &form).await
}

async fn refresh(stack: &TestStack, region: Region, rt: &str, scope: Option<&str>) -> (u16, Value) {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    token(stack, region, &form).await
}

fn scim(stack: &TestStack, region: Region, team: &str, access_token: &str) -> Scim {
    Scim {
        http: stack.http.clone(),
        gateway: stack.gateway.url(),
        host: region.api().to_owned(),
        team_id: team.to_owned(),
        token: access_token.to_owned(),
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// A workspace, its admin's session and a connected grant's first tokens.
async fn connected(stack: &TestStack, region: Region, ask: &Ask<'_>) -> (Workspace, String, Value) {
    let ws = stack.workspace(region, "Acme", "admin@acme.test").await;
    let cookie = stack.sign_in_with_link(region, &ws).await;
    let code = approved_code(stack, ask, &cookie).await;
    let (s, tokens) = exchange(stack, region, &code, None).await;
    assert_eq!(s, 200, "{tokens}");
    (ws, cookie, tokens)
}

async fn audit_actions(stack: &TestStack, region: Region, team: &str) -> Vec<String> {
    let url = &stack.stores(region).pg_url;
    let db = pg_connect(url).await.unwrap();
    let team = uuid::Uuid::parse_str(team).unwrap();
    db.query(
        "SELECT action FROM audit_events WHERE team_id = $1 ORDER BY id",
        &[&team],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[tokio::test]
async fn the_whole_flow_as_okta_and_an_admin_drive_it() {
    let stack = TestStack::start().await.unwrap();
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;

    // Okta's admin console opens /authorize in the admin's browser, not yet signed in.
    let ask = Ask::new(Region::Us);
    let r = authorize(&stack, Region::Us, &ask.params()).await;
    assert_eq!(r.status(), 303);
    let consent = location(&r);
    assert!(
        consent.starts_with("http://app.closedloop.localhost/oauth/consent?request="),
        "{consent}"
    );
    let consent_path = path_of(&consent);

    // The consent page sends a signed-out browser through sign-in, and back.
    let r = stack.get(US_APP, &consent_path).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let sign_in = location(&r);
    assert!(
        sign_in.starts_with("/auth?return_to=%2Foauth%2Fconsent"),
        "{sign_in}"
    );
    let html = stack
        .get(US_APP, &sign_in)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(hidden(&html, "return_to").unwrap(), consent_path);
    let r = stack
        .request(Method::POST, US_APP, "/auth/link")
        .form(&[
            ("code", ws.sign_in_url.as_str()),
            ("return_to", &consent_path),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), consent_path, "back to the consent page");
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    // The consent page names the workspace, region, team_id, client and every scope.
    let page = stack
        .get(US_APP, &consent_path)
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()[CACHE_CONTROL], "no-store");
    let html = page.text().await.unwrap();
    for needle in [
        "Acme",
        "<dd>US</dd>",
        &ws.team_id,
        US_SCIM_CLIENT_ID,
        "127.0.0.1",
        "admin@acme.test",
    ] {
        assert!(html.contains(needle), "{needle} in {html}");
    }
    for s in Scope::ALL {
        assert!(html.contains(&html_text(s.describe())), "{s} in words");
    }
    assert!(!html.contains("<script"), "no JavaScript needed");

    // Approve: back to Okta with a code and the echoed state.
    let r = decide(&stack, Region::Us, &cookie, &html, "approve").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[CACHE_CONTROL], "no-store");
    let back = location(&r);
    assert!(back.starts_with(&callback()), "{back}");
    let q = query_of(&back);
    assert_eq!(q["state"], "okta-state-1");
    assert!(q["code"].starts_with("clk_us_otc_"));

    // Okta redeems the code (client_secret_basic).
    let (s, tokens) = exchange(&stack, Region::Us, &q["code"], None).await;
    assert_eq!(s, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(tokens["scope"], ALL_SCOPES);
    let access = str_of(&tokens, "access_token");
    let rt = str_of(&tokens, "refresh_token");
    assert!(access.starts_with("clk_us_scim_") && rt.starts_with("clk_us_rt_"));

    // SCIM accepts the token as it is: users, groups, roles.
    let client = scim(&stack, Region::Us, &ws.team_id, access);
    assert_eq!(client.get("/Users").await.0, 200);
    assert_eq!(client.get("/Roles").await.0, 200);
    let (s, user) = client
        .post(
            "/Users",
            &json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "jane@acme.test", "active": true }),
        )
        .await;
    assert_eq!(s, 201, "{user}");

    // Okta refreshes (client_secret_post): a new pair, the refresh token rotated.
    let (s, next) = token_with(
        &stack,
        Region::Us,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", Region::Us.scim_client().0),
            ("client_secret", Region::Us.scim_client().1),
        ],
        None,
    )
    .await;
    assert_eq!(s, 200, "{next}");
    assert_eq!(next["scope"], ALL_SCOPES);
    assert_ne!(next["refresh_token"], tokens["refresh_token"]);
    let client = scim(
        &stack,
        Region::Us,
        &ws.team_id,
        str_of(&next, "access_token"),
    );
    assert_eq!(client.get("/Groups").await.0, 200);

    let actions = audit_actions(&stack, Region::Us, &ws.team_id).await;
    for a in [
        "session.signed_in.link",
        "scim_oauth.grant.approved",
        "scim_oauth.token.issued",
        "scim_oauth.token.refreshed",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
}

/// An OAuth 2.0 client library written by others, over the workspace's reqwest.
mod library {
    use std::future::Future;
    use std::net::SocketAddr;
    use std::pin::Pin;

    use oauth2::{AsyncHttpClient, HttpRequest, HttpResponse};

    /// `oauth2`'s HTTP seam implemented with reqwest, resolving the test hosts to the
    /// gateway so that the library sees the real public URLs.
    pub struct ViaGateway(reqwest::Client);

    impl ViaGateway {
        pub fn new(gateway: SocketAddr, hosts: &[&str]) -> Self {
            let mut builder =
                reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
            for h in hosts {
                builder = builder.resolve(h, gateway);
            }
            Self(builder.build().expect("client builds"))
        }

        pub fn reqwest(&self) -> &reqwest::Client {
            &self.0
        }
    }

    #[derive(Debug, thiserror::Error)]
    pub enum HttpError {
        #[error("sending: {0}")]
        Send(#[from] reqwest::Error),
        #[error("building the response: {0}")]
        Build(#[from] http::Error),
    }

    impl<'c> AsyncHttpClient<'c> for ViaGateway {
        type Error = HttpError;
        type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

        fn call(&'c self, request: HttpRequest) -> Self::Future {
            Box::pin(async move {
                let response = self.0.execute(reqwest::Request::try_from(request)?).await?;
                let mut out = http::Response::builder().status(response.status());
                for (name, value) in response.headers() {
                    out = out.header(name, value);
                }
                Ok(out.body(response.bytes().await?.to_vec())?)
            })
        }
    }
}

#[tokio::test]
async fn an_independent_oauth2_client_library_completes_the_flow() {
    use oauth2::basic::{BasicClient, BasicErrorResponseType};
    use oauth2::{
        AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
        RedirectUrl, RequestTokenError, Scope as OScope, TokenResponse, TokenUrl,
    };

    let stack = TestStack::start().await.unwrap();
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    let cookie = stack.sign_in_with_link(Region::Us, &ws).await;
    let http = library::ViaGateway::new(stack.gateway.addr, &[US_API]);
    let api = format!("http://{US_API}:{}", stack.gateway.addr.port());
    let client = BasicClient::new(ClientId::new(US_SCIM_CLIENT_ID.to_owned()))
        .set_client_secret(ClientSecret::new(US_SCIM_CLIENT_SECRET.to_owned()))
        .set_auth_uri(AuthUrl::new(format!("{api}{AUTHORIZE}")).unwrap())
        .set_token_uri(TokenUrl::new(format!("{api}{TOKEN}")).unwrap())
        .set_redirect_uri(RedirectUrl::new(callback()).unwrap());

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(OScope::new("scim.read".into()))
        .add_scope(OScope::new("scim.write".into()))
        .add_scope(OScope::new("entitlements.read".into()))
        .set_pkce_challenge(challenge)
        .url();
    // The admin's browser follows the library's URL to the consent page and approves.
    let r = http.reqwest().get(url.as_str()).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let page = stack
        .get(US_APP, &path_of(&location(&r)))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = decide(&stack, Region::Us, &cookie, &page, "approve").await;
    let q = query_of(&location(&r));
    assert_eq!(&q["state"], csrf.secret(), "state echoed");
    let code = q["code"].clone();

    let tokens = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the library accepts our token response");
    let scopes: Vec<String> = tokens
        .scopes()
        .expect("scope returned")
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(scopes, ["scim.read", "scim.write", "entitlements.read"]);
    assert_eq!(tokens.expires_in(), Some(Duration::from_secs(3600)));
    let client_scim = scim(
        &stack,
        Region::Us,
        &ws.team_id,
        tokens.access_token().secret(),
    );
    assert_eq!(client_scim.get("/Users").await.0, 200);

    // The library parses our errors: a reused code is invalid_grant.
    match client
        .exchange_code(AuthorizationCode::new(code))
        .request_async(&http)
        .await
    {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(*e.error(), BasicErrorResponseType::InvalidGrant);
        }
        other => panic!("expected invalid_grant, got {other:?}"),
    }
    // … which revoked the grant: its refresh token is dead too.
    let rt = tokens.refresh_token().expect("refresh token").clone();
    assert!(
        client
            .exchange_refresh_token(&rt)
            .request_async(&http)
            .await
            .is_err()
    );
    assert_eq!(client_scim.get("/Users").await.0, 401);

    // A second grant, refreshed with client_secret_post, narrowing the scope.
    let cookie2 = cookie.clone();
    let fresh = code_via_library(&stack, &client, &http, &cookie2).await;
    let tokens = client
        .exchange_code(AuthorizationCode::new(fresh))
        .request_async(&http)
        .await
        .unwrap();
    let post = client.clone().set_auth_type(AuthType::RequestBody);
    let narrowed = post
        .exchange_refresh_token(tokens.refresh_token().unwrap())
        .add_scope(OScope::new("scim.read".into()))
        .request_async(&http)
        .await
        .expect("refresh with client_secret_post");
    let scopes: Vec<String> = narrowed
        .scopes()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(scopes, ["scim.read"]);
    // A wrong secret is invalid_client.
    let wrong = client
        .clone()
        .set_client_secret(ClientSecret::new("wrong".into()));
    match wrong
        .exchange_refresh_token(narrowed.refresh_token().unwrap())
        .request_async(&http)
        .await
    {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(*e.error(), BasicErrorResponseType::InvalidClient);
        }
        other => panic!("expected invalid_client, got {other:?}"),
    }
}

/// The browser part for the library's client, without PKCE.
async fn code_via_library<C>(
    stack: &TestStack,
    client: &C,
    http: &library::ViaGateway,
    cookie: &str,
) -> String
where
    C: AuthorizeUrl,
{
    let url = client.url_for_all_scopes();
    let r = http.reqwest().get(url.as_str()).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let page = stack
        .get(US_APP, &path_of(&location(&r)))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = decide(stack, Region::Us, cookie, &page, "approve").await;
    query_of(&location(&r))["code"].clone()
}

/// What [`code_via_library`] needs of the library's client type (whose full generic
/// name is long).
trait AuthorizeUrl {
    fn url_for_all_scopes(&self) -> url::Url;
}

impl<TE, TR, TIR, RT, TRE, HasTokenUrl, HasDeviceAuthUrl, HasIntrospectionUrl, HasRevocationUrl>
    AuthorizeUrl
    for oauth2::Client<
        TE,
        TR,
        TIR,
        RT,
        TRE,
        oauth2::EndpointSet,
        HasDeviceAuthUrl,
        HasIntrospectionUrl,
        HasRevocationUrl,
        HasTokenUrl,
    >
where
    TE: oauth2::ErrorResponse + 'static,
    TR: oauth2::TokenResponse,
    TIR: oauth2::TokenIntrospectionResponse,
    RT: oauth2::RevocableToken,
    TRE: oauth2::ErrorResponse + 'static,
    HasDeviceAuthUrl: oauth2::EndpointState,
    HasIntrospectionUrl: oauth2::EndpointState,
    HasRevocationUrl: oauth2::EndpointState,
    HasTokenUrl: oauth2::EndpointState,
{
    fn url_for_all_scopes(&self) -> url::Url {
        self.authorize_url(oauth2::CsrfToken::new_random)
            .add_scope(oauth2::Scope::new("scim.read".into()))
            .add_scope(oauth2::Scope::new("scim.write".into()))
            .add_scope(oauth2::Scope::new("entitlements.read".into()))
            .url()
            .0
    }
}

#[tokio::test]
async fn a_bad_client_or_redirect_uri_gets_a_page_and_never_a_redirect() {
    let stack = TestStack::start().await.unwrap();
    let good = callback();
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "unknown client",
            vec![
                ("client_id", "someone-else".into()),
                ("redirect_uri", good.clone()),
            ],
        ),
        (
            "EU client at the US host",
            vec![
                ("client_id", EU_SCIM_CLIENT_ID.into()),
                ("redirect_uri", good.clone()),
            ],
        ),
        ("no client", vec![("redirect_uri", good.clone())]),
        ("no redirect", vec![("client_id", US_SCIM_CLIENT_ID.into())]),
        (
            "foreign host",
            vec![
                ("client_id", US_SCIM_CLIENT_ID.into()),
                (
                    "redirect_uri",
                    "https://evil.test/admin/app/cpc/x/oauth/callback".into(),
                ),
            ],
        ),
        (
            "Okta host, other path",
            vec![
                ("client_id", US_SCIM_CLIENT_ID.into()),
                (
                    "redirect_uri",
                    "https://system-admin.okta.com/admin/app/cpc/x/oauth/callback/../../../evil"
                        .into(),
                ),
            ],
        ),
        (
            "Okta host over http",
            vec![
                ("client_id", US_SCIM_CLIENT_ID.into()),
                (
                    "redirect_uri",
                    "http://system-admin.okta.com/admin/app/cpc/x/oauth/callback".into(),
                ),
            ],
        ),
        (
            "look-alike host",
            vec![
                ("client_id", US_SCIM_CLIENT_ID.into()),
                (
                    "redirect_uri",
                    "https://system-admin.okta.com.evil.test/admin/app/cpc/x/oauth/callback".into(),
                ),
            ],
        ),
        (
            "repeated redirect",
            vec![
                ("client_id", US_SCIM_CLIENT_ID.into()),
                ("redirect_uri", good.clone()),
                ("redirect_uri", "https://evil.test/".into()),
            ],
        ),
    ];
    for (what, mut params) in cases {
        params.push(("response_type", "code".into()));
        params.push(("state", "s".into()));
        let r = authorize(&stack, Region::Us, &params).await;
        assert_eq!(r.status(), 400, "{what}");
        assert!(
            r.headers().get(LOCATION).is_none(),
            "{what}: never redirects"
        );
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{what}: a page"
        );
    }
    // The production Okta callbacks are allowed (the flow continues to consent).
    for host in [
        "okta.com",
        "okta-emea.com",
        "oktapreview.com",
        "trexcloud.com",
    ] {
        let uri = format!("https://system-admin.{host}/admin/app/cpc/closedloop_ai/oauth/callback");
        let r = authorize(
            &stack,
            Region::Us,
            &[
                ("client_id", US_SCIM_CLIENT_ID.into()),
                ("redirect_uri", uri),
                ("response_type", "code".into()),
            ],
        )
        .await;
        assert_eq!(r.status(), 303, "{host}");
        assert!(location(&r).contains("/oauth/consent?request="));
    }
}

#[tokio::test]
async fn errors_after_the_redirect_is_trusted_go_back_to_the_client() {
    let stack = TestStack::start().await.unwrap();
    let base = |extra: &[(&'static str, &str)], skip: &str| {
        let mut p: Vec<(&str, String)> = Ask::new(Region::Us)
            .params()
            .into_iter()
            .filter(|(k, _)| *k != skip)
            .collect();
        p.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        p
    };
    let cases = [
        (
            "unsupported_response_type",
            base(&[("response_type", "token")], "response_type"),
        ),
        ("invalid_request", base(&[], "response_type")),
        (
            "invalid_scope",
            base(&[("scope", "scim.read admin")], "scope"),
        ),
        ("invalid_scope", base(&[("scope", "SCIM.READ")], "scope")),
        (
            "invalid_request",
            base(
                &[(
                    "code_challenge",
                    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                )],
                "",
            ),
        ),
        (
            "invalid_request",
            base(
                &[
                    (
                        "code_challenge",
                        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                    ),
                    ("code_challenge_method", "plain"),
                ],
                "",
            ),
        ),
        (
            "invalid_request",
            base(&[("code_challenge_method", "S256")], ""),
        ),
        ("invalid_request", base(&[("scope", "scim.read")], "")),
    ];
    for (error, params) in cases {
        let r = authorize(&stack, Region::Us, &params).await;
        assert_eq!(r.status(), 303, "{error}: {params:?}");
        let back = location(&r);
        assert!(back.starts_with(&callback()), "{back}");
        let q = query_of(&back);
        assert_eq!(q["error"], error, "{params:?}");
        assert_eq!(q["state"], "okta-state-1", "state echoed");
        assert!(!q.contains_key("code"));
    }

    // Deny: access_denied with the state, and an audit event.
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    let cookie = stack.sign_in_with_link(Region::Us, &ws).await;
    let html = consent_page(&stack, &Ask::new(Region::Us), &cookie).await;
    let r = decide(&stack, Region::Us, &cookie, &html, "deny").await;
    assert_eq!(r.status(), 303);
    let q = query_of(&location(&r));
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "okta-state-1");
    // The decision is taken once.
    let again = decide(&stack, Region::Us, &cookie, &html, "approve").await;
    assert_eq!(again.status(), 400);
    assert!(again.headers().get(LOCATION).is_none());
    let actions = audit_actions(&stack, Region::Us, &ws.team_id).await;
    assert!(
        actions.iter().any(|a| a == "scim_oauth.grant.denied"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn the_token_endpoint_authenticates_the_client_and_speaks_rfc_6749() {
    let stack = TestStack::start().await.unwrap();
    let grant = [
        ("grant_type", "refresh_token"),
        ("refresh_token", "clk_us_rt_x"),
    ];
    // Wrong secret, either method; unknown client; no credentials: 401 invalid_client.
    for basic in [
        Some((US_SCIM_CLIENT_ID, "wrong-secret")),
        Some(("someone-else", US_SCIM_CLIENT_SECRET)),
        Some((EU_SCIM_CLIENT_ID, EU_SCIM_CLIENT_SECRET)),
        None,
    ] {
        let (s, body) = token_with(&stack, Region::Us, &grant, basic).await;
        assert_eq!(s, 401, "{basic:?}: {body}");
        assert_eq!(body["error"], "invalid_client");
        assert!(body["error_description"].is_string());
    }
    let mut posted = grant.to_vec();
    posted.extend([
        ("client_id", US_SCIM_CLIENT_ID),
        ("client_secret", "wrong-secret"),
    ]);
    let (s, body) = token_with(&stack, Region::Us, &posted, None).await;
    assert_eq!((s, body["error"].as_str()), (401, Some("invalid_client")));
    // Both methods at once.
    let mut both = grant.to_vec();
    both.extend([
        ("client_id", US_SCIM_CLIENT_ID),
        ("client_secret", US_SCIM_CLIENT_SECRET),
    ]);
    let (s, body) = token(&stack, Region::Us, &both).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_request")));
    // Grant types.
    let (s, body) = token(&stack, Region::Us, &[("grant_type", "client_credentials")]).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let (s, body) = token(&stack, Region::Us, &[("scope", "scim.read")]).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_request")));
    let (s, body) = token(
        &stack,
        Region::Us,
        &[
            ("grant_type", "refresh_token"),
            ("grant_type", "refresh_token"),
        ],
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_request")));
    let (s, body) = token(&stack, Region::Us, &[("grant_type", "authorization_code")]).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_request")));
    let (s, body) = token(
        &stack,
        Region::Us,
        &[
            ("grant_type", "authorization_code"),
            ("code", "clk_us_otc_nope"),
            ("redirect_uri", &callback()),
        ],
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    let (s, body) = token(
        &stack,
        Region::Us,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "clk_us_rt_x"),
            ("scope", "admin"),
        ],
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_scope")));
    // A JSON body is not the protocol.
    let r = stack
        .request(Method::POST, US_API, TOKEN)
        .basic_auth(US_SCIM_CLIENT_ID, Some(US_SCIM_CLIENT_SECRET))
        .json(&json!({ "grant_type": "refresh_token" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    // Only POST.
    assert_eq!(stack.get(US_API, TOKEN).send().await.unwrap().status(), 405);
}

#[tokio::test]
async fn a_code_is_single_use_and_its_reuse_revokes_what_it_issued() {
    let stack = TestStack::start().await.unwrap();
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    let cookie = stack.sign_in_with_link(Region::Us, &ws).await;
    let code = approved_code(&stack, &Ask::new(Region::Us), &cookie).await;
    let (s, tokens) = exchange(&stack, Region::Us, &code, None).await;
    assert_eq!(s, 200);
    let client = scim(
        &stack,
        Region::Us,
        &ws.team_id,
        str_of(&tokens, "access_token"),
    );
    assert_eq!(client.get("/Users").await.0, 200);

    let (s, body) = exchange(&stack, Region::Us, &code, None).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(
        client.get("/Users").await.0,
        401,
        "the access token died with its grant"
    );
    let (s, body) = refresh(&stack, Region::Us, str_of(&tokens, "refresh_token"), None).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    let actions = audit_actions(&stack, Region::Us, &ws.team_id).await;
    assert!(
        actions.iter().any(|a| a == "scim_oauth.grant.revoked"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let stack = TestStack::start().await.unwrap();
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    let cookie = stack.sign_in_with_link(Region::Us, &ws).await;
    let code = approved_code(&stack, &Ask::new(Region::Us), &cookie).await;
    stack.advance_clock(Region::Us, Duration::from_secs(61));
    let (s, body) = exchange(&stack, Region::Us, &code, None).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    // A code redeemed within its minute works.
    let code = approved_code(&stack, &Ask::new(Region::Us), &cookie).await;
    stack.advance_clock(Region::Us, Duration::from_secs(59));
    assert_eq!(exchange(&stack, Region::Us, &code, None).await.0, 200);
}

#[tokio::test]
async fn pkce_and_the_redirect_uri_bind_the_code() {
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let stack = TestStack::start().await.unwrap();
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    let cookie = stack.sign_in_with_link(Region::Us, &ws).await;
    let ask = Ask {
        challenge: Some(CHALLENGE),
        ..Ask::new(Region::Us)
    };
    let wrong = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX";
    for verifier in [Some(wrong), None] {
        let c = approved_code(&stack, &ask, &cookie).await;
        let (s, body) = exchange(&stack, Region::Us, &c, verifier).await;
        assert_eq!(
            (s, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{verifier:?}"
        );
    }
    // A verifier for a code that had no challenge is refused (no PKCE downgrade).
    let c = approved_code(&stack, &Ask::new(Region::Us), &cookie).await;
    let (s, body) = exchange(&stack, Region::Us, &c, Some(VERIFIER)).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    // Another allowed redirect URI than the authorization request's.
    let c = approved_code(&stack, &ask, &cookie).await;
    let other = okta_callback(4443, "another_app");
    let (s, body) = token(
        &stack,
        Region::Us,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", &other),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    // The right verifier.
    let c = approved_code(&stack, &ask, &cookie).await;
    let (s, body) = exchange(&stack, Region::Us, &c, Some(VERIFIER)).await;
    assert_eq!(s, 200, "{body}");
}

#[tokio::test]
async fn scopes_default_to_all_and_a_refresh_narrows_but_never_widens() {
    let stack = TestStack::start().await.unwrap();
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    let cookie = stack.sign_in_with_link(Region::Us, &ws).await;

    // An omitted scope means all three.
    let c = approved_code(
        &stack,
        &Ask {
            scope: None,
            ..Ask::new(Region::Us)
        },
        &cookie,
    )
    .await;
    let (_, all) = exchange(&stack, Region::Us, &c, None).await;
    assert_eq!(all["scope"], ALL_SCOPES);
    // Narrow to scim.read: writes are refused at SCIM.
    let (s, read) = refresh(
        &stack,
        Region::Us,
        str_of(&all, "refresh_token"),
        Some("scim.read"),
    )
    .await;
    assert_eq!(s, 200, "{read}");
    assert_eq!(read["scope"], "scim.read");
    let reader = scim(
        &stack,
        Region::Us,
        &ws.team_id,
        str_of(&read, "access_token"),
    );
    assert_eq!(reader.get("/Users").await.0, 200);
    let (s, _) = reader
        .post("/Users", &json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x@acme.test" }))
        .await;
    assert_eq!(s, 403);
    // The grant keeps its scopes: the next refresh may ask for all of them again.
    let (s, again) = refresh(&stack, Region::Us, str_of(&read, "refresh_token"), None).await;
    assert_eq!((s, again["scope"].as_str()), (200, Some(ALL_SCOPES)));

    // A grant of scim.read only cannot be widened.
    let c = approved_code(
        &stack,
        &Ask {
            scope: Some("scim.read"),
            ..Ask::new(Region::Us)
        },
        &cookie,
    )
    .await;
    let (_, narrow) = exchange(&stack, Region::Us, &c, None).await;
    assert_eq!(narrow["scope"], "scim.read");
    let (s, body) = refresh(
        &stack,
        Region::Us,
        str_of(&narrow, "refresh_token"),
        Some("scim.read scim.write"),
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_scope")));
    let (s, body) = refresh(
        &stack,
        Region::Us,
        str_of(&narrow, "refresh_token"),
        Some("admin"),
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_scope")));
    let roles_only = scim(
        &stack,
        Region::Us,
        &ws.team_id,
        str_of(&narrow, "access_token"),
    );
    assert_eq!(
        roles_only.get("/Roles").await.0,
        403,
        "no entitlements.read"
    );
}

#[tokio::test]
async fn a_rotated_refresh_token_presented_again_revokes_the_grant() {
    let stack = TestStack::start().await.unwrap();
    let (ws, _, first) = connected(&stack, Region::Us, &Ask::new(Region::Us)).await;
    let rt1 = str_of(&first, "refresh_token");
    let (s, second) = refresh(&stack, Region::Us, rt1, None).await;
    assert_eq!(s, 200);
    let access2 = scim(
        &stack,
        Region::Us,
        &ws.team_id,
        str_of(&second, "access_token"),
    );
    assert_eq!(access2.get("/Users").await.0, 200);

    // The old refresh token again: reuse. The grant and everything from it die.
    let (s, body) = refresh(&stack, Region::Us, rt1, None).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    let (s, body) = refresh(&stack, Region::Us, str_of(&second, "refresh_token"), None).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(access2.get("/Users").await.0, 401);
    assert_eq!(
        scim(
            &stack,
            Region::Us,
            &ws.team_id,
            str_of(&first, "access_token")
        )
        .get("/Users")
        .await
        .0,
        401
    );
    let actions = audit_actions(&stack, Region::Us, &ws.team_id).await;
    assert!(
        actions.iter().any(|a| a == "scim_oauth.grant.revoked"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn refresh_tokens_slide_and_expire_when_idle() {
    let stack = TestStack::start().await.unwrap();
    let (_, _, tokens) = connected(&stack, Region::Us, &Ask::new(Region::Us)).await;
    let day = Duration::from_secs(86_400);
    // Used every 60 days, it lives on (sliding expiry, default 90 days idle).
    stack.advance_clock(Region::Us, day * 60);
    let (s, next) = refresh(&stack, Region::Us, str_of(&tokens, "refresh_token"), None).await;
    assert_eq!(s, 200, "{next}");
    stack.advance_clock(Region::Us, day * 60);
    let (s, last) = refresh(&stack, Region::Us, str_of(&next, "refresh_token"), None).await;
    assert_eq!(s, 200, "{last}");
    // Idle for 91 days, it is dead.
    stack.advance_clock(Region::Us, day * 91);
    let (s, body) = refresh(&stack, Region::Us, str_of(&last, "refresh_token"), None).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn an_access_token_expires_when_the_workers_clock_passes_its_exp() {
    let stack = TestStack::start().await.unwrap();
    let (ws, _, tokens) = connected(&stack, Region::Us, &Ask::new(Region::Us)).await;
    assert_eq!(tokens["expires_in"], 3600);
    let client = scim(
        &stack,
        Region::Us,
        &ws.team_id,
        str_of(&tokens, "access_token"),
    );
    assert_eq!(client.get("/Users").await.0, 200);
    // Its Redis entry outlives this test (real seconds); only the clock moves.
    stack.advance_clock(Region::Us, Duration::from_secs(3590));
    assert_eq!(client.get("/Users").await.0, 200);
    stack.advance_clock(Region::Us, Duration::from_secs(10));
    assert_eq!(client.get("/Users").await.0, 401);
    // The refresh token (idle expiry 90 days) still brings a working access token.
    let (s, next) = refresh(&stack, Region::Us, str_of(&tokens, "refresh_token"), None).await;
    assert_eq!(s, 200, "{next}");
    let renewed = scim(
        &stack,
        Region::Us,
        &ws.team_id,
        str_of(&next, "access_token"),
    );
    assert_eq!(renewed.get("/Users").await.0, 200);
}

#[tokio::test]
async fn tokens_work_only_for_their_workspace_and_region() {
    let stack = TestStack::start().await.unwrap();
    let (ws_a, _, tokens) = connected(&stack, Region::Us, &Ask::new(Region::Us)).await;
    let access = str_of(&tokens, "access_token");
    assert_eq!(
        scim(&stack, Region::Us, &ws_a.team_id, access)
            .get("/Users")
            .await
            .0,
        200
    );

    // Workspace B of the same region: 401 at its SCIM URL.
    let ws_b = stack
        .workspace(Region::Us, "Other", "admin@other.test")
        .await;
    assert_eq!(
        scim(&stack, Region::Us, &ws_b.team_id, access)
            .get("/Users")
            .await
            .0,
        401
    );

    // The EU host: the US workspace does not exist there, and an EU workspace refuses
    // the US token.
    assert_eq!(
        scim(&stack, Region::Eu, &ws_a.team_id, access)
            .get("/Users")
            .await
            .0,
        404
    );
    let (ws_eu, eu_cookie, eu_tokens) = connected(&stack, Region::Eu, &Ask::new(Region::Eu)).await;
    assert!(str_of(&eu_tokens, "access_token").starts_with("clk_eu_scim_"));
    assert_eq!(
        scim(&stack, Region::Eu, &ws_eu.team_id, access)
            .get("/Users")
            .await
            .0,
        401
    );
    assert_eq!(
        scim(
            &stack,
            Region::Eu,
            &ws_eu.team_id,
            str_of(&eu_tokens, "access_token")
        )
        .get("/Users")
        .await
        .0,
        200
    );

    // Codes, refresh tokens and clients do not cross regions either.
    let eu_code = approved_code(&stack, &Ask::new(Region::Eu), &eu_cookie).await;
    let (s, body) = exchange(&stack, Region::Us, &eu_code, None).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    let (s, body) = refresh(
        &stack,
        Region::Us,
        str_of(&eu_tokens, "refresh_token"),
        None,
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    let (s, body) = token_with(
        &stack,
        Region::Eu,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", str_of(&eu_tokens, "refresh_token")),
        ],
        Some((US_SCIM_CLIENT_ID, US_SCIM_CLIENT_SECRET)),
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (401, Some("invalid_client")));
    // The US admin's session is for the US app host only.
    let r = authorize(&stack, Region::Eu, &Ask::new(Region::Eu).params()).await;
    let page = stack
        .get(EU_APP, &path_of(&location(&r)))
        .header(
            COOKIE,
            stack
                .sign_in_with_link(
                    Region::Us,
                    &stack.workspace(Region::Us, "Third", "a@third.test").await,
                )
                .await,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303, "sent to sign in at the EU host");
}

#[tokio::test]
async fn only_a_workspace_admin_may_approve_and_forms_need_their_csrf_token() {
    let stack = TestStack::start().await.unwrap();
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    let admin = stack.sign_in_with_link(Region::Us, &ws).await;
    // A member with a session.
    let (_, member) = stack
        .scim(Region::Us, &ws.team_id, "")
        .await
        .post("/Users", &json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "m@acme.test" }))
        .await;
    let session = region_worker::session::start(
        &stack.worker(Region::Us).state,
        shared::ids::TeamId::parse(&ws.team_id).unwrap(),
        uuid::Uuid::parse_str(member["id"].as_str().unwrap()).unwrap(),
        0,
        "test",
    )
    .await
    .unwrap();
    let member_cookie = session
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    let r = authorize(&stack, Region::Us, &Ask::new(Region::Us).params()).await;
    let consent = path_of(&location(&r));
    let page = stack
        .get(US_APP, &consent)
        .header(COOKIE, &member_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 403);
    let page = stack
        .get(US_APP, GRANTS_PAGE)
        .header(COOKIE, &member_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 403);

    // The admin's page, but a forged or foreign CSRF token.
    let html = stack
        .get(US_APP, &consent)
        .header(COOKIE, &admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let request = hidden(&html, "request").unwrap();
    for csrf in [
        String::new(),
        "0".repeat(64),
        // The genuine token with its first character changed: always a different token.
        {
            let genuine = hidden(&html, "csrf").unwrap();
            let first = if genuine.starts_with('a') { "b" } else { "a" };
            format!("{first}{}", genuine.get(1..).unwrap_or_default())
        },
    ] {
        let r = stack
            .request(Method::POST, US_APP, "/oauth/consent")
            .header(COOKIE, &admin)
            .form(&[
                ("request", request.as_str()),
                ("csrf", &csrf),
                ("decision", "approve"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "csrf {csrf:?}");
        assert!(r.headers().get(LOCATION).is_none());
    }
    // A post from another origin, with the right token.
    let r = stack
        .request(Method::POST, US_APP, "/oauth/consent")
        .header(COOKIE, &admin)
        .header("origin", "https://evil.test")
        .form(&[
            ("request", request.as_str()),
            ("csrf", &hidden(&html, "csrf").unwrap()),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The member cannot approve even with the admin's page's token.
    let r = stack
        .request(Method::POST, US_APP, "/oauth/consent")
        .header(COOKIE, &member_cookie)
        .form(&[
            ("request", request.as_str()),
            ("csrf", &hidden(&html, "csrf").unwrap()),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The request is still pending: the admin approves it.
    let r = decide(&stack, Region::Us, &admin, &html, "approve").await;
    assert_eq!(r.status(), 303);
    assert!(query_of(&location(&r)).contains_key("code"));

    // return_to never leaves the host.
    for evil in ["//evil.test/", "https://evil.test/", "/\\evil.test"] {
        let html = stack
            .get(US_APP, "/auth")
            .query(&[("return_to", evil)])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!html.contains("evil.test"), "{evil}: {html}");
    }
}

#[tokio::test]
async fn the_grants_page_lists_grants_and_disconnect_revokes_every_token_at_once() {
    let stack = TestStack::start().await.unwrap();
    let (ws, cookie, tokens) = connected(&stack, Region::Us, &Ask::new(Region::Us)).await;
    let client = scim(
        &stack,
        Region::Us,
        &ws.team_id,
        str_of(&tokens, "access_token"),
    );
    assert_eq!(client.get("/Users").await.0, 200);
    let (_, refreshed) = refresh(&stack, Region::Us, str_of(&tokens, "refresh_token"), None).await;
    let client2 = scim(
        &stack,
        Region::Us,
        &ws.team_id,
        str_of(&refreshed, "access_token"),
    );
    assert_eq!(client2.get("/Users").await.0, 200);

    // Signed out: through sign-in and back.
    let r = stack.get(US_APP, GRANTS_PAGE).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        location(&r),
        "/auth?return_to=%2Fintegrations%2Fokta%2Fprovisioning"
    );

    let page = stack
        .get(US_APP, GRANTS_PAGE)
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("admin@acme.test"), "approved by whom: {html}");
    assert!(html.contains("<code>scim.write</code>"), "scopes");
    assert!(
        !html.contains("Not yet"),
        "last used is shown once used: {html}"
    );
    assert_eq!(html.matches(">Disconnect</button>").count(), 1);

    // Disconnect without the token is refused.
    let grant_id = hidden(&html, "grant_id").unwrap();
    let r = stack
        .request(
            Method::POST,
            US_APP,
            "/integrations/okta/provisioning/disconnect",
        )
        .header(COOKIE, &cookie)
        .form(&[("grant_id", grant_id.as_str()), ("csrf", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(client.get("/Users").await.0, 200);

    let r = stack
        .request(
            Method::POST,
            US_APP,
            "/integrations/okta/provisioning/disconnect",
        )
        .header(COOKIE, &cookie)
        .form(&[
            ("grant_id", grant_id.as_str()),
            ("csrf", &hidden(&html, "csrf").unwrap()),
            ("return_to", &hidden(&html, "return_to").unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), format!("{GRANTS_PAGE}?disconnected=1"));
    // Every token of the grant, at once.
    assert_eq!(client.get("/Users").await.0, 401);
    assert_eq!(client2.get("/Users").await.0, 401);
    let (s, body) = refresh(
        &stack,
        Region::Us,
        str_of(&refreshed, "refresh_token"),
        None,
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    let html = stack
        .get(US_APP, &format!("{GRANTS_PAGE}?disconnected=1"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("role=\"status\""));
    assert!(html.contains("No Okta provisioning connection."));

    // A worker whose Redis lost every hot entry (a fresh key space over the same
    // Postgres) still refuses them, and still accepts a live grant's token.
    let (_, live) = {
        let c = approved_code(&stack, &Ask::new(Region::Us), &cookie).await;
        exchange(&stack, Region::Us, &c, None).await
    };
    let mut stores = stack.us_stores.clone();
    stores.redis_prefix = redis_prefix();
    let cold = TestWorker::start(worker_config(Region::Us, &stores))
        .await
        .unwrap();
    let at_cold = |token: String| {
        let url = format!("{}/api/scim/v2/{}/Users", cold.url(), ws.team_id);
        async move {
            closedloop_tests::harness::client()
                .get(url)
                .header("host", US_API)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        at_cold(str_of(&refreshed, "access_token").to_owned()).await,
        401
    );
    assert_eq!(at_cold(str_of(&live, "access_token").to_owned()).await, 200);
    let actions = audit_actions(&stack, Region::Us, &ws.team_id).await;
    assert!(
        actions.iter().any(|a| a == "scim_oauth.grant.disconnected"),
        "{actions:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_is_503_with_retry_after_and_no_internals() {
    use deploy::stores::{RedisServer, free_port};
    let dir =
        std::env::temp_dir().join(format!("clt-oauth-redis-{}", uuid::Uuid::new_v4().simple()));
    let mut redis =
        tokio::task::block_in_place(|| RedisServer::start(&dir, free_port().unwrap(), false))
            .unwrap();
    let stores = closedloop_tests::harness::RegionStores {
        pg_url: closedloop_tests::harness::fresh_database()
            .await
            .unwrap()
            .url,
        redis_url: redis.url(),
        redis_prefix: String::new(),
    };
    let worker = TestWorker::start(worker_config(Region::Us, &stores))
        .await
        .unwrap();
    let created = region_worker::cli::workspace_create(&worker.state, "Acme", "a@acme.test")
        .await
        .unwrap();
    let http = closedloop_tests::harness::client();
    let link = created.sign_in_url.clone();
    let signed_in = http
        .post(format!("{}/auth/link", worker.url()))
        .header("host", US_APP)
        .form(&[("code", link.as_str())])
        .send()
        .await
        .unwrap();
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let r = http
        .get(format!("{}{AUTHORIZE}", worker.url()))
        .header("host", US_API)
        .query(&Ask::new(Region::Us).params())
        .send()
        .await
        .unwrap();
    let consent = path_of(&location(&r));

    tokio::task::block_in_place(|| redis.stop()).unwrap();
    // The token endpoint: RFC 6749 JSON, 503, Retry-After, no-store, no internals.
    let code = format!("clk_us_otc_{}", "a".repeat(43));
    let redirect = callback();
    let r = http
        .post(format!("{}{TOKEN}", worker.url()))
        .header("host", US_API)
        .basic_auth(US_SCIM_CLIENT_ID, Some(US_SCIM_CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    assert_eq!(r.headers()[CACHE_CONTROL], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(!body.to_string().to_lowercase().contains("redis"), "{body}");
    // The authorize endpoint tells the client; the consent page tells the person.
    let r = http
        .get(format!("{}{AUTHORIZE}", worker.url()))
        .header("host", US_API)
        .query(&Ask::new(Region::Us).params())
        .send()
        .await
        .unwrap();
    assert_eq!(query_of(&location(&r))["error"], "temporarily_unavailable");
    let r = http
        .get(format!("{}{consent}", worker.url()))
        .header("host", US_APP)
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    assert!(r.text().await.unwrap().contains("try again"));
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn without_its_table_the_server_says_it_is_not_configured() {
    let stores = closedloop_tests::harness::RegionStores::fresh()
        .await
        .unwrap();
    let mut config = worker_config(Region::Us, &stores);
    config.scim_oauth = None;
    let worker = TestWorker::start(config).await.unwrap();
    let http = closedloop_tests::harness::client();
    let r = http
        .get(format!("{}{AUTHORIZE}", worker.url()))
        .header("host", US_API)
        .query(&Ask::new(Region::Us).params())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().get(LOCATION).is_none());
    assert!(r.text().await.unwrap().contains("not configured"));
    let r = http
        .post(format!("{}{TOKEN}", worker.url()))
        .header("host", US_API)
        .form(&[("grant_type", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("not configured"),
        "{body}"
    );
    worker.stop().await.unwrap();
}
