//! The seed's whole story as an Okta admin lives it (seed-okta-integration.md, Setup
//! Steps 1–6 and the six Testing steps), through the gateway, for one region: a
//! library so that both the e2e suite and an operator command can run it, each step
//! reported as one line with its result.
//!
//! The Okta side is configured only with the values the Integrations > Okta page shows
//! (scraped from its HTML, `app.team_id` substituted by the tenant setting), never with
//! values typed into the story, so a page that showed a wrong URL fails the story.
//!
//! The story, per region:
//!
//! 1. the operator creates the workspace; its admin signs in with the one-time link;
//! 2. the admin reads the setup values on Integrations > Okta; the Okta app is
//!    configured with them (Steps 1, 2, 4) and the page's form saved (Step 3, JIT on);
//! 3. a person assigned in Okta but not provisioned signs in from the Okta dashboard
//!    and is created just in time;
//! 4. provisioning is connected through the OAuth consent (Step 5); SCIM provisioning of
//!    the JIT person links them, with no conflict;
//! 5. entitlement discovery finds the roles (Step 6);
//! 6. Testing: assign → provisioned → sign in with the email → through Okta and back →
//!    deactivate in Okta → session and tokens refused → reactivate, sign in → Universal
//!    Logout → must sign in again;
//! 7. group push with membership changes; a role granted in Okta changes what the user
//!    may do.

use anyhow::{Context, bail, ensure};
use serde_json::Value;

use crate::harness::TestStack;
use crate::okta_sim::directory::{NewUser, UserId};
use crate::okta_sim::logout::Subject;
use crate::okta_sim::oauth_client::{OAuthClient, OAuthClientConfig};
use crate::okta_sim::provisioning::{Provisioned, RoleChange, ScimAuth, ScimSettings};
use crate::okta_sim::seed::SeedApp;
use crate::okta_sim::upstream::Upstream;
use crate::okta_sim::{AppHandle, OktaSim};
use crate::region::Region;
use crate::web::{Web, code_by_id, hidden, shown_secret};

/// The test user of the seed's Testing section: the same email in every region.
pub const JANE: &str = "jane@acme.test";
/// The workspace's first admin (in-process; the local stack's carry the run's tag).
pub const ADMIN: &str = "admin@acme.test";

/// Where the story runs.
#[derive(Debug)]
pub enum StoryTarget<'a> {
    /// An in-process two-region stack: the operator's commands run on a worker's state.
    InProcess(&'a TestStack),
    /// The running local stack (`closedloop-local`), as `.local/stack.json` records it.
    Local(LocalStack),
}

/// The running local stack: what `.local/stack.json` records, and where the operator
/// command (`region-worker`) is.
#[derive(Debug, Clone)]
pub struct LocalStack {
    /// The gateway's URL (`http://127.0.0.1:8080`).
    pub gateway: String,
    /// The local region map.
    pub config: std::path::PathBuf,
    /// The `region-worker` binary, for `workspace create`.
    pub worker_bin: std::path::PathBuf,
    /// `stack.json` itself.
    pub stack: Value,
    /// A tag of this run (`demo-1a2b3c4d`): the local stores keep every earlier run's
    /// people, so each run's emails live under their own domain.
    pub tag: String,
}

impl LocalStack {
    /// Reads `stack.json`; `worker_bin` is the `region-worker` to run operator
    /// commands with.
    pub fn load(
        stack_json: &std::path::Path,
        worker_bin: std::path::PathBuf,
    ) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(stack_json)
            .with_context(|| format!("{} (is closedloop-local running?)", stack_json.display()))?;
        let stack: Value = serde_json::from_str(&text)?;
        let gateway = format!(
            "http://{}",
            stack["gateway"].as_str().context("stack.json: gateway")?
        );
        let config =
            std::path::PathBuf::from(stack["config"].as_str().context("stack.json: config")?);
        Ok(Self {
            gateway,
            config,
            worker_bin,
            stack,
            tag: format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        })
    }

    fn region(&self, region: Region) -> &Value {
        &self.stack["regions"][region.as_str()]
    }

    fn env(&self, region: Region) -> Vec<(String, String)> {
        self.region(region)["env"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl StoryTarget<'_> {
    /// The gateway's URL (`http://127.0.0.1:PORT`).
    pub fn gateway(&self) -> String {
        match self {
            Self::InProcess(stack) => stack.gateway.url(),
            Self::Local(l) => l.gateway.clone(),
        }
    }

    /// The app base URL of `region` (`http://app.closedloop.localhost[:PORT]`).
    pub fn app_base(&self, region: Region) -> String {
        match self {
            Self::InProcess(_) => region.app_url(),
            Self::Local(l) => l.region(region)["app_url"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        }
    }

    /// The domain of the story's emails: the same in every region of one run.
    pub fn email_domain(&self) -> String {
        match self {
            Self::InProcess(_) => "acme.test".to_owned(),
            Self::Local(l) => format!("{}.acme.test", l.tag),
        }
    }

    /// The SCIM OAuth client (Okta's, one per region) of `region`: id and secret.
    pub fn scim_client(&self, region: Region) -> (String, String) {
        match self {
            Self::InProcess(_) => {
                let (id, secret) = region.scim_client();
                (id.to_owned(), secret.to_owned())
            }
            Self::Local(l) => {
                let env = format!(
                    "CLOSEDLOOP_{}_SCIM_OAUTH_SECRET",
                    region.as_str().to_uppercase()
                );
                let secret = l
                    .env(region)
                    .into_iter()
                    .find(|(k, _)| *k == env)
                    .map(|(_, v)| v)
                    .unwrap_or_default();
                (format!("okta-scim-{region}"), secret)
            }
        }
    }

    /// Creates a workspace with the operator command's code path: `(team_id, admin
    /// user id, one-time sign-in URL)`.
    async fn workspace(
        &self,
        region: Region,
        name: &str,
        admin: &str,
    ) -> anyhow::Result<(String, String, String)> {
        let v: Value = match self {
            Self::InProcess(stack) => serde_json::to_value(
                region_worker::cli::workspace_create(&stack.worker(region).state, name, admin)
                    .await?,
            )?,
            Self::Local(l) => {
                let out = tokio::process::Command::new(&l.worker_bin)
                    .args(["workspace", "create", "--config"])
                    .arg(&l.config)
                    .args(["--region", region.as_str(), "--name", name])
                    .args(["--admin-email", admin])
                    .envs(l.env(region))
                    .output()
                    .await
                    .with_context(|| format!("running {}", l.worker_bin.display()))?;
                ensure!(
                    out.status.success(),
                    "workspace create: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                serde_json::from_slice(&out.stdout)?
            }
        };
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        Ok((s("team_id"), s("admin_user_id"), s("sign_in_url")))
    }
}

/// The setup values the Integrations > Okta page shows, as Okta is configured with
/// them.
#[derive(Debug, Clone)]
pub struct SetupValues {
    /// The tenant setting `team_id`.
    pub team_id: String,
    /// Step 2's Redirect URI.
    pub redirect_uri: String,
    /// Step 2's Initiate login URI, `{app.team_id}` substituted.
    pub initiate_login_uri: String,
    /// Step 2's Post-logout URI.
    pub post_logout_uri: String,
    /// Step 4's Global Token Revocation endpoint.
    pub gtr_endpoint: String,
    /// Step 5's Base URL, its expression evaluated with `app.team_id`.
    pub scim_base_url: String,
    /// Step 5's Authorize endpoint.
    pub scim_authorize: String,
    /// Step 5's Token endpoint.
    pub scim_token: String,
}

impl SetupValues {
    /// Reads the values from the page's HTML.
    pub fn scrape(html: &str) -> anyhow::Result<Self> {
        let team_id = code_by_id(html, "team-id")?;
        let with_team = |s: String| s.replace("{app.team_id}", &team_id);
        Ok(Self {
            redirect_uri: code_by_id(html, "redirect-uri")?,
            initiate_login_uri: with_team(code_by_id(html, "initiate-login-uri")?),
            post_logout_uri: code_by_id(html, "post-logout-uri")?,
            gtr_endpoint: code_by_id(html, "gtr-endpoint")?,
            scim_base_url: eval_expression(&code_by_id(html, "scim-base-url")?, &team_id)?,
            scim_authorize: code_by_id(html, "scim-authorize")?,
            scim_token: code_by_id(html, "scim-token")?,
            team_id,
        })
    }
}

/// Evaluates an Okta Expression Language string concatenation (`'…' + app.team_id`)
/// as Okta does with the tenant setting; anything else is an invalid base URL, as Okta
/// reports it.
pub fn eval_expression(expr: &str, team_id: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    for term in expr.split('+').map(str::trim) {
        if term == "app.team_id" {
            out.push_str(team_id);
        } else if let Some(lit) = term.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
            out.push_str(lit);
        } else {
            bail!("invalid SCIM base URL expression term {term:?} in {expr:?}");
        }
    }
    Ok(out)
}

/// What one region's story leaves behind: identifiers and live credentials, for the
/// isolation checks.
#[derive(Debug, Clone)]
pub struct StoryOutcome {
    /// The region.
    pub region: Region,
    /// The workspace.
    pub team_id: String,
    /// Our user ids (admin, the test user, the JIT user, the region-only user).
    pub user_ids: Vec<String>,
    /// Our group ids.
    pub group_ids: Vec<String>,
    /// Emails used in this region only.
    pub region_emails: Vec<String>,
    /// The test user's live browser session (`clk_session=…`).
    pub session_cookie: String,
    /// A live API token.
    pub api_token: String,
    /// A live MCP token.
    pub mcp_token: String,
    /// The live SCIM access token of the OAuth grant.
    pub scim_access_token: String,
    /// Its refresh token.
    pub scim_refresh_token: String,
    /// The admin's one-time sign-in URL (used).
    pub sign_in_url: String,
}

impl StoryOutcome {
    /// Nothing yet: the run fills it in step by step.
    fn new(region: Region) -> Self {
        Self {
            region,
            team_id: String::new(),
            user_ids: Vec::new(),
            group_ids: Vec::new(),
            region_emails: Vec::new(),
            session_cookie: String::new(),
            api_token: String::new(),
            mcp_token: String::new(),
            scim_access_token: String::new(),
            scim_refresh_token: String::new(),
            sign_in_url: String::new(),
        }
    }
}

/// One region's run: where it goes, the Okta org playing along, and the run's people.
struct Run<'a> {
    target: &'a StoryTarget<'a>,
    sim: &'a OktaSim,
    region: Region,
    gateway: String,
    app_base: String,
    /// The test user's email (the same in every region of a run).
    jane: String,
    /// The JIT person's email.
    carol: String,
    /// The first admin's email.
    admin: String,
}

impl<'a> Run<'a> {
    fn new(target: &'a StoryTarget<'a>, sim: &'a OktaSim, region: Region) -> Self {
        let domain = target.email_domain();
        Self {
            target,
            sim,
            region,
            gateway: target.gateway(),
            app_base: target.app_base(region),
            jane: format!("jane@{domain}"),
            carol: format!("carol@{domain}"),
            admin: format!("admin@{domain}"),
        }
    }
}

/// Reports each step of one region's run.
struct Steps<'r, F: FnMut(&str, bool)> {
    region: Region,
    report: &'r mut F,
}

impl<F: FnMut(&str, bool)> Steps<'_, F> {
    /// Reports `r`: `done(&value)` when it succeeded, `what` and the error when it
    /// failed (which ends the story, the error carrying `what`).
    fn check<T>(
        &mut self,
        what: &str,
        r: anyhow::Result<T>,
        done: impl FnOnce(&T) -> String,
    ) -> anyhow::Result<T> {
        match r {
            Ok(v) => {
                (self.report)(&format!("[{}] {}", self.region, done(&v)), true);
                Ok(v)
            }
            Err(e) => {
                (self.report)(&format!("[{}] {what}: {e:#}", self.region), false);
                Err(e.context(format!("[{}] {what}", self.region)))
            }
        }
    }

    /// Reports a step whose line is the same either way.
    fn step<T>(&mut self, line: &str, r: anyhow::Result<T>) -> anyhow::Result<T> {
        self.check(line, r, |_| line.to_owned())
    }
}

/// Runs the story in `region` against `target` with the Okta org `sim` (one org per
/// region: deactivating a user in Okta is org-wide). Every step is reported to
/// `report` as `(line, ok)`; the first failing step ends the run with its error.
pub async fn run_story(
    target: &StoryTarget<'_>,
    sim: &OktaSim,
    region: Region,
    report: &mut impl FnMut(&str, bool),
) -> anyhow::Result<StoryOutcome> {
    let run = Run::new(target, sim, region);
    let mut s = Steps { region, report };
    let mut out = StoryOutcome::new(region);
    let (jane_email, carol_email) = (run.jane.clone(), run.carol.clone());
    let mut admin = Web::new(&run.gateway);

    // The operator creates the workspace; its admin signs in with the link.
    let (team_id, admin_id, link) = s.check(
        "the operator creates the workspace",
        target.workspace(region, "Acme", &run.admin).await,
        |(t, _, _)| format!("the operator created workspace {t}"),
    )?;
    out.team_id = team_id.clone();
    out.user_ids.push(admin_id);
    out.sign_in_url = link.clone();
    s.step(
        "its admin signed in with the one-time link",
        run.sign_in_with_link(&mut admin, &link).await,
    )?;

    // Setup Steps 1, 2, 4: the Okta app configured with the page's values.
    let values = s.check(
        "Integrations > Okta shows the setup values",
        match run.setup_values(&mut admin).await {
            Ok(v) => run.values_belong_to_region(&v, &team_id).map(|()| v),
            Err(e) => Err(e),
        },
        |v| {
            format!(
                "Integrations > Okta shows team_id, redirect {}, SCIM base {}",
                v.redirect_uri, v.scim_base_url
            )
        },
    )?;
    let app = s.check(
        "Okta app added (Steps 1, 2, 4)",
        sim.add_app(SeedApp {
            name: format!("closedloop-{region}"),
            client_id: None,
            client_secret: None,
            redirect_uris: vec![values.redirect_uri.clone()],
            post_logout_redirect_uris: vec![values.post_logout_uri.clone()],
        })
        .map_err(anyhow::Error::from),
        |a| {
            format!(
                "Okta app {} added with the page's redirect and post-logout URIs (Steps 1, 2, 4)",
                a.client_id()
            )
        },
    )?;
    s.step(
        "Integrations > Okta saved with the app's client (Step 3, JIT on)",
        run.save_setup(&mut admin, &app, true).await,
    )?;

    // JIT: assigned in Okta, not provisioned, signs in from the dashboard.
    let carol = s.step(
        &format!("{carol_email} added to the Okta org"),
        run.okta_user(&carol_email, "Carol", "Jones"),
    )?;
    s.step(
        &format!(
            "{carol_email} assigned in Okta, signed in from the Okta dashboard, created just in time"
        ),
        run.jit_sign_in(&app, &carol, &values).await,
    )?;

    // Step 5: provisioning through the OAuth consent.
    let (access, refresh) = s.step(
        "provisioning connected through the OAuth consent (Step 5)",
        run.connect_provisioning(&mut admin, &app, &values).await,
    )?;
    out.scim_access_token = access;
    out.scim_refresh_token = refresh;
    let carol_id = s.check(
        "SCIM provisioning of the JIT user",
        run.link_jit_user(&app, &carol).await,
        |id| format!("SCIM provisioning of {carol_email} linked the JIT user {id}, no conflict"),
    )?;
    out.user_ids.push(carol_id.clone());

    // Step 6: entitlements.
    let (admin_role, _) = s.check(
        "entitlement discovery (Step 6)",
        run.discover_roles(&app).await,
        |(a, m)| format!("entitlement discovery found Admin ({a}) and Member ({m}) (Step 6)"),
    )?;

    // A region-only person, for the isolation checks.
    let only = format!("only-{region}@{}", target.email_domain());
    let only_id = s.check(
        &format!("{only} provisioned"),
        match run.okta_user(&only, "Solo", region.as_str()) {
            Ok(u) => run.assign(&app, &u).await,
            Err(e) => Err(e),
        },
        |id| format!("{only} provisioned as {id} (used in this region only)"),
    )?;
    out.user_ids.push(only_id);
    out.region_emails.push(only.clone());

    // Testing 1–2: assign, provisioned.
    let jane = s.step(
        &format!("{jane_email} added to the Okta org"),
        run.okta_user(&jane_email, "Jane", "Doe"),
    )?;
    let jane_id = s.check(
        "Testing 1–2: assign the test user",
        run.assign(&app, &jane).await,
        |id| format!("Testing 1–2: {jane_email} assigned in Okta, provisioning created {id}"),
    )?;
    out.user_ids.push(jane_id.clone());
    s.step(
        "Testing 2 on a page: People shows the user provisioned by SCIM, active, never signed in",
        run.expect_on_people(&mut admin, &jane_email, &["Active", "SCIM", "Never"])
            .await,
    )?;

    // Testing 3–4: sign in with the email, through Okta and back.
    sim.set_auto_sign_in(Some(&jane));
    let (session, api, mcp) = s.step(
        "Testing 3–4: signed in with the email, redirected to Okta and back, signed in",
        run.sign_in_and_take_tokens(&jane_email).await,
    )?;
    s.step(
        "Testing 3–4 on a page: People shows the sign-in, Activity the Okta sign-in",
        match run
            .expect_on_people(&mut admin, &jane_email, &["Active"])
            .await
        {
            Ok(row) if row.contains(">Never<") => {
                Err(anyhow::anyhow!("People still shows no sign-in: {row}"))
            }
            Ok(_) => {
                run.expect_in_activity(&mut admin, &jane_email, "session.signed_in.okta")
                    .await
            }
            Err(e) => Err(e),
        },
    )?;
    s.step(
        "API and MCP tokens created on /tokens, accepted",
        run.expect_access(&session, &api, &mcp, true).await,
    )?;

    // Testing 5: deactivate in Okta; access removed.
    s.step(
        "Testing 5: deactivated in Okta (SCIM active:false)",
        sim.deactivate_user(&jane).await.map_err(Into::into),
    )?;
    s.step(
        "Testing 5: access removed (session, API and MCP tokens refused)",
        run.expect_access(&session, &api, &mcp, false).await,
    )?;
    s.step(
        "Testing 5 on a page: People shows the user deactivated, Activity the SCIM deactivation",
        match run
            .expect_on_people(&mut admin, &jane_email, &["Deactivated"])
            .await
        {
            Ok(_) => {
                run.expect_in_activity(&mut admin, &jane_email, "scim.user.deactivated")
                    .await
            }
            Err(e) => Err(e),
        },
    )?;
    let mut again = Web::new(&run.gateway);
    s.step(
        "Testing 5: a new sign-in is refused",
        run.expect_sign_in_refused(&mut again, &jane_email).await,
    )?;

    // Reactivate, sign in, Universal Logout.
    s.step(
        "reactivated in Okta (SCIM active:true)",
        sim.reactivate_user(&jane).await.map_err(Into::into),
    )?;
    let (session, api, mcp) = s.step(
        "signed in again through Okta, new API and MCP tokens",
        run.sign_in_and_take_tokens(&jane_email).await,
    )?;
    s.step(
        "Testing 6: Universal Logout from Okta answered 204",
        run.universal_logout(&app, &values).await,
    )?;
    s.step(
        "Testing 6: session, API and MCP tokens refused",
        run.expect_access(&session, &api, &mcp, false).await,
    )?;
    s.step(
        "Testing 6 on a page: Activity shows the Universal Logout accepted",
        run.expect_in_activity(&mut admin, &jane_email, "okta.universal_logout")
            .await,
    )?;
    let (session, api, mcp) = s.step(
        "Testing 6: the user must sign in again, and can",
        run.sign_in_and_take_tokens(&jane_email).await,
    )?;
    out.session_cookie = session.clone();
    out.api_token = api;
    out.mcp_token = mcp;

    // Group push with membership changes.
    let group = s.check(
        "group push",
        run.group_push(
            &app,
            (&jane, &jane_id),
            (&carol, &carol_id),
            &out.scim_access_token,
            &values,
        )
        .await,
        |id| {
            format!(
                "group Engineering pushed ({id}); members followed Okta: +{jane_email}, +{carol_email}, -{jane_email}"
            )
        },
    )?;
    out.group_ids.push(group);

    // A role granted in Okta changes what the user may do.
    s.step(
        "as Member, Integrations > Okta is forbidden",
        run.expect_admin_page(&session, false).await,
    )?;
    s.step(
        "Okta granted Admin: Integrations > Okta opens",
        match app
            .change_roles(&jane, &RoleChange::Grant(admin_role.clone()))
            .await
        {
            Ok(_) => run.expect_admin_page(&session, true).await,
            Err(e) => Err(e.into()),
        },
    )?;
    s.step(
        "Okta revoked Admin: forbidden again",
        match app
            .change_roles(&jane, &RoleChange::Revoke(admin_role))
            .await
        {
            Ok(_) => run.expect_admin_page(&session, false).await,
            Err(e) => Err(e.into()),
        },
    )?;
    Ok(out)
}

impl Run<'_> {
    fn app_url(&self, path: &str) -> String {
        format!("{}{path}", self.app_base)
    }

    async fn sign_in_with_link(&self, web: &mut Web, link: &str) -> anyhow::Result<()> {
        web.sign_in_with_link(link).await.map(|_| ())
    }

    async fn setup_values(&self, admin: &mut Web) -> anyhow::Result<SetupValues> {
        let page = admin.get(&self.app_url("/integrations/okta")).await?;
        ensure!(page.status == 200, "the page answered {}", page.status);
        SetupValues::scrape(&page.body)
    }

    /// Every value names this region's API host and the workspace.
    fn values_belong_to_region(&self, v: &SetupValues, team_id: &str) -> anyhow::Result<()> {
        ensure!(
            v.team_id == team_id,
            "team_id {} shown, {team_id} created",
            v.team_id
        );
        let api = self.app_base.replacen("app.", "api.", 1);
        for url in [
            &v.redirect_uri,
            &v.initiate_login_uri,
            &v.gtr_endpoint,
            &v.scim_base_url,
            &v.scim_authorize,
            &v.scim_token,
        ] {
            ensure!(url.starts_with(&api), "{url} is not on {api}");
        }
        ensure!(
            v.scim_base_url
                .ends_with(&format!("/api/scim/v2/{team_id}")),
            "SCIM base {}",
            v.scim_base_url
        );
        Ok(())
    }

    async fn save_setup(&self, admin: &mut Web, app: &AppHandle, jit: bool) -> anyhow::Result<()> {
        let url = self.app_url("/integrations/okta");
        let page = admin.get(&url).await?;
        let form_at = page
            .body
            .find("action=\"/integrations/okta\"")
            .context("the settings form")?;
        let csrf = hidden(&page.body[form_at..], "csrf")?;
        let domain = self.sim.base_url().trim_start_matches("http://").to_owned();
        let secret = app.client_secret();
        let mut form = vec![
            ("csrf", csrf.as_str()),
            ("okta_domain", domain.as_str()),
            ("client_id", app.client_id()),
            ("client_secret", secret.as_str()),
            ("sign_in_enabled", "on"),
        ];
        if jit {
            form.push(("jit_provisioning", "on"));
        }
        let saved = admin.post(&url, &form).await?;
        ensure!(saved.status == 303, "saving answered {}", saved.status);
        let page = admin.get(&url).await?;
        ensure!(
            page.body
                .contains(&format!("<code id=\"issuer\">{}</code>", self.sim.issuer())),
            "the page does not show the issuer {}",
            self.sim.issuer()
        );
        Ok(())
    }

    /// The org's user with `login`, added if new.
    fn okta_user(&self, login: &str, given: &str, family: &str) -> anyhow::Result<UserId> {
        if let Some(id) = self.sim.user_by_login(login) {
            return Ok(id);
        }
        Ok(self.sim.add_user(NewUser::new(login, given, family))?)
    }

    /// Assigns `user` to the connected app; returns our id for them.
    async fn assign(&self, app: &AppHandle, user: &UserId) -> anyhow::Result<String> {
        match app.assign(user).await? {
            Provisioned::Created(id) => Ok(id.as_str().to_owned()),
            other => bail!("provisioning answered {other:?}, not a creation"),
        }
    }

    /// The user is assigned before provisioning is connected (recorded only), then
    /// signs in from the Okta dashboard: the Initiate login URI.
    async fn jit_sign_in(
        &self,
        app: &AppHandle,
        user: &UserId,
        values: &SetupValues,
    ) -> anyhow::Result<()> {
        let assigned = app.assign(user).await?;
        ensure!(
            matches!(assigned, Provisioned::NotConnected),
            "assignment provisioned before the connection: {assigned:?}"
        );
        self.sim.set_auto_sign_in(Some(user));
        let mut web = Web::new(&self.gateway);
        // Begun at Okta's dashboard, not on the app host: one click to confirm.
        let asked = web.go(&values.initiate_login_uri).await?;
        let home = web.confirm(asked).await?;
        ensure!(
            home.body
                .contains(&format!("Signed in as <strong>{}</strong>", self.carol)),
            "not signed in: {} {}",
            home.status,
            excerpt(&home.body)
        );
        self.session(&web).map(|_| ())
    }

    /// Okta's admin connects provisioning: the consent in the admin's browser, the
    /// code exchanged by the org; returns `(access, refresh)`.
    async fn connect_provisioning(
        &self,
        admin: &mut Web,
        app: &AppHandle,
        values: &SetupValues,
    ) -> anyhow::Result<(String, String)> {
        let (client_id, secret) = self.target.scim_client(self.region);
        let config = OAuthClientConfig::okta(
            &values.scim_authorize,
            Upstream::via(&values.scim_token, &self.gateway)?,
            &client_id,
            &secret,
        )?;
        let mut client = OAuthClient::new(config, self.sim.clock().clone())?;
        let ask = client.authorize_url();
        let r = admin.get(ask.url.as_str()).await?;
        ensure!(r.status == 303, "authorize answered {}", r.status);
        let consent_url = r.location.context("authorize redirects to the consent")?;
        let consent = admin.get(&consent_url).await?;
        ensure!(
            consent.status == 200,
            "consent page answered {}",
            consent.status
        );
        let request = hidden(&consent.body, "request")?;
        let csrf = hidden(&consent.body, "csrf")?;
        let decided = admin
            .post(
                &self.app_url("/oauth/consent"),
                &[
                    ("request", request.as_str()),
                    ("csrf", csrf.as_str()),
                    ("decision", "approve"),
                ],
            )
            .await?;
        ensure!(decided.status == 303, "consent answered {}", decided.status);
        let callback = decided.location.context("back to Okta's callback")?;
        client.complete(&callback).await?;
        let tokens = client.tokens().context("tokens held")?;
        let access = tokens.access_token.expose().to_owned();
        let refresh = tokens
            .refresh_token
            .as_ref()
            .map(|t| t.expose().to_owned())
            .unwrap_or_default();
        app.connect_scim(ScimSettings::new(
            Upstream::via(&values.scim_base_url, &self.gateway)?,
            ScimAuth::OAuth(Box::new(client)),
        ))?;
        Ok((access, refresh))
    }

    /// Assigning the JIT user again now that provisioning is connected: Okta's
    /// existence check finds and links them; nothing answered 409.
    async fn link_jit_user(&self, app: &AppHandle, user: &UserId) -> anyhow::Result<String> {
        app.clear_scim_log();
        let linked = app.assign(user).await?;
        ensure!(
            matches!(linked, Provisioned::Linked(_)),
            "provisioning answered {linked:?}, not a link"
        );
        let conflicts = app.scim_log().iter().filter(|x| x.status == 409).count();
        ensure!(conflicts == 0, "{conflicts} conflicts");
        let users = app.import_users().await?;
        let n = users
            .iter()
            .filter(|u| {
                u["userName"].as_str().map(str::to_lowercase).as_deref()
                    == Some(self.carol.as_str())
            })
            .count();
        ensure!(n == 1, "{n} users named {}", self.carol);
        Ok(app.scim_id(user).context("linked")?.as_str().to_owned())
    }

    async fn discover_roles(&self, app: &AppHandle) -> anyhow::Result<(String, String)> {
        let ent = app.discover_entitlements().await?;
        let roles = ent.values.get("Role").context("no Role resource type")?;
        let id = |name: &str| -> anyhow::Result<String> {
            roles
                .iter()
                .find(|r| r["displayName"] == name)
                .and_then(|r| r["id"].as_str())
                .map(str::to_owned)
                .with_context(|| format!("no {name} role"))
        };
        Ok((id("Admin")?, id("Member")?))
    }

    /// "Sign in with your work email", through Okta and back to the app, signed in.
    async fn email_sign_in(&self, web: &mut Web, email: &str) -> anyhow::Result<()> {
        let start = web
            .post(&self.app_url("/auth"), &[("email", email)])
            .await?;
        ensure!(start.status == 303, "/auth answered {}", start.status);
        let (trail, home) = web.trail(start).await?;
        ensure!(
            trail.iter().any(|u| u.starts_with(self.sim.issuer())),
            "never went to Okta: {trail:?}"
        );
        ensure!(
            home.status == 200
                && home
                    .body
                    .contains(&format!("Signed in as <strong>{email}</strong>")),
            "not signed in: {} {}",
            home.status,
            excerpt(&home.body)
        );
        Ok(())
    }

    /// Signs `email` in through Okta in a fresh browser and creates an API and an MCP
    /// token with the session: `(session cookie, API token, MCP token)`.
    async fn sign_in_and_take_tokens(
        &self,
        email: &str,
    ) -> anyhow::Result<(String, String, String)> {
        let mut browser = Web::new(&self.gateway);
        self.email_sign_in(&mut browser, email).await?;
        let session = self.session(&browser)?;
        let api = self.create_token(&session, "api").await?;
        let mcp = self.create_token(&session, "mcp").await?;
        Ok((session, api, mcp))
    }

    async fn expect_sign_in_refused(&self, web: &mut Web, email: &str) -> anyhow::Result<()> {
        let start = web
            .post(&self.app_url("/auth"), &[("email", email)])
            .await?;
        let (_, end) = web.trail(start).await?;
        ensure!(
            !end.body.contains("Signed in as"),
            "signed in although deactivated"
        );
        ensure!(self.session(web).is_err(), "a session was started");
        Ok(())
    }

    /// The browser's session cookie on the app host, as a `Cookie` header value.
    fn session(&self, web: &Web) -> anyhow::Result<String> {
        let host = self.app_base.trim_start_matches("http://");
        web.cookie(host, "clk_session")
            .map(|v| format!("clk_session={v}"))
            .context("no session cookie")
    }

    async fn create_token(&self, session: &str, kind: &str) -> anyhow::Result<String> {
        let http = crate::harness::client();
        let host = self.app_base.trim_start_matches("http://");
        let page = http
            .get(format!("{}/tokens", self.gateway))
            .header(reqwest::header::HOST, host)
            .header(reqwest::header::COOKIE, session)
            .send()
            .await?;
        ensure!(page.status() == 200, "/tokens answered {}", page.status());
        let csrf = hidden(&page.text().await?, "csrf")?;
        let created = http
            .post(format!("{}/tokens", self.gateway))
            .header(reqwest::header::HOST, host)
            .header(reqwest::header::COOKIE, session)
            .form(&[
                ("name", kind),
                ("kind", kind),
                ("expires_in_days", "30"),
                ("csrf", csrf.as_str()),
            ])
            .send()
            .await?;
        ensure!(
            created.status() == 200,
            "creating answered {}",
            created.status()
        );
        shown_secret(&created.text().await?)
    }

    /// The session opens `/tokens`, the API token `/api/me`, the MCP token
    /// `/api/mcp/whoami`: all (`live`) or none.
    async fn expect_access(
        &self,
        session: &str,
        api: &str,
        mcp: &str,
        live: bool,
    ) -> anyhow::Result<()> {
        let a =
            credential_status(&self.gateway, &self.app_base, Credential::Session(session)).await?;
        let b = credential_status(&self.gateway, &self.app_base, Credential::Api(api)).await?;
        let c = credential_status(&self.gateway, &self.app_base, Credential::Mcp(mcp)).await?;
        let want = if live {
            (200, 200, 200)
        } else {
            (303, 401, 401)
        };
        ensure!(
            (a, b, c) == want,
            "session/API/MCP answered {:?}, expected {want:?}",
            (a, b, c)
        );
        Ok(())
    }

    async fn universal_logout(&self, app: &AppHandle, values: &SetupValues) -> anyhow::Result<()> {
        let endpoint = Upstream::via(&values.gtr_endpoint, &self.gateway)?;
        let sent = app
            .universal_logout(&endpoint, &Subject::Email(self.jane.clone()))
            .await?;
        ensure!(sent.status == 204, "answered {} {}", sent.status, sent.body);
        Ok(())
    }

    /// Pushes a group with the test user, adds the JIT user, removes the test user;
    /// after each change our group's members are exactly Okta's.
    /// `jane` and `carol` are each the Okta user and our id for them.
    async fn group_push(
        &self,
        app: &AppHandle,
        (jane, jane_id): (&UserId, &str),
        (carol, carol_id): (&UserId, &str),
        scim_token: &str,
        values: &SetupValues,
    ) -> anyhow::Result<String> {
        let group = self.sim.add_group("Engineering");
        self.sim.add_to_group(&group, jane).await?;
        let id = app.push_group(&group).await?.as_str().to_owned();
        expect_members(&self.gateway, values, &id, scim_token, &[jane_id]).await?;
        self.sim.add_to_group(&group, carol).await?;
        expect_members(&self.gateway, values, &id, scim_token, &[jane_id, carol_id]).await?;
        self.sim.remove_from_group(&group, jane).await?;
        expect_members(&self.gateway, values, &id, scim_token, &[carol_id]).await?;
        Ok(id)
    }

    /// The user's row on People, found by a search for their email: it must show each of
    /// `shown` as a cell. Returns the row's HTML.
    async fn expect_on_people(
        &self,
        admin: &mut Web,
        email: &str,
        shown: &[&str],
    ) -> anyhow::Result<String> {
        let mut url = url::Url::parse(&self.app_url("/people"))?;
        url.query_pairs_mut().append_pair("q", email);
        let page = admin.get(url.as_str()).await?;
        ensure!(page.status == 200, "People answered {}", page.status);
        let row = page
            .body
            .split("<tr>")
            .find(|r| r.contains(&format!("<small>{email}</small>")))
            .ok_or_else(|| anyhow::anyhow!("People has no row for {email}"))?;
        let row = row.split("</tr>").next().unwrap_or(row).to_owned();
        for cell in shown {
            ensure!(
                row.contains(&format!(">{cell}<")),
                "People's row for {email} does not show {cell}: {row}"
            );
        }
        Ok(row)
    }

    /// Activity, filtered to the user and the event `code`, lists at least one such
    /// event.
    async fn expect_in_activity(
        &self,
        admin: &mut Web,
        email: &str,
        code: &str,
    ) -> anyhow::Result<()> {
        let mut url = url::Url::parse(&self.app_url("/activity"))?;
        url.query_pairs_mut()
            .append_pair("user", email)
            .append_pair("kind", code);
        let page = admin.get(url.as_str()).await?;
        ensure!(page.status == 200, "Activity answered {}", page.status);
        ensure!(
            page.body.contains(&format!("<code>{code}</code>")),
            "Activity shows no {code} for {email}"
        );
        Ok(())
    }

    async fn expect_admin_page(&self, session: &str, allowed: bool) -> anyhow::Result<()> {
        let http = crate::harness::client();
        let r = http
            .get(format!("{}/integrations/okta", self.gateway))
            .header(
                reqwest::header::HOST,
                self.app_base.trim_start_matches("http://"),
            )
            .header(reqwest::header::COOKIE, session)
            .send()
            .await?;
        let status = r.status().as_u16();
        if allowed {
            ensure!(status == 200, "answered {status}");
        } else {
            ensure!(status == 403, "answered {status}");
        }
        Ok(())
    }
}

/// Our group's members are exactly `want`.
async fn expect_members(
    gateway: &str,
    values: &SetupValues,
    group: &str,
    token: &str,
    want: &[&str],
) -> anyhow::Result<()> {
    let got = group_members(gateway, values, group, token).await?;
    let want = sorted(want.iter().map(|s| (*s).to_owned()).collect());
    ensure!(got == want, "members {got:?}, expected {want:?}");
    Ok(())
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Our group's member ids, read with SCIM as Okta would.
async fn group_members(
    gateway: &str,
    values: &SetupValues,
    group: &str,
    token: &str,
) -> anyhow::Result<Vec<String>> {
    let base = Upstream::via(&values.scim_base_url, gateway)?;
    let (url, host) = base.target(&format!("/Groups/{group}"))?;
    let mut req = crate::harness::client().get(url).bearer_auth(token);
    if let Some(h) = host {
        req = req.header(reqwest::header::HOST, h);
    }
    let v: Value = req.send().await?.json().await?;
    let ids = v["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|x| x["value"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(sorted(ids))
}

/// A credential presented to a region, each where it is used.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// A browser session cookie (`clk_session=…`), on `/tokens` of the app host.
    Session(&'a str),
    /// An API token, on `/api/me`.
    Api(&'a str),
    /// An MCP token, on `/api/mcp/whoami`.
    Mcp(&'a str),
}

/// The status a region (`app_base`, its API host derived) answers for `cred`.
pub async fn credential_status(
    gateway: &str,
    app_base: &str,
    cred: Credential<'_>,
) -> anyhow::Result<u16> {
    let http = crate::harness::client();
    let app = app_base.trim_start_matches("http://");
    let api = app.replacen("app.", "api.", 1);
    let req = match cred {
        Credential::Session(c) => http
            .get(format!("{gateway}/tokens"))
            .header(reqwest::header::HOST, app)
            .header(reqwest::header::COOKIE, c),
        Credential::Api(t) => http
            .get(format!("{gateway}/api/me"))
            .header(reqwest::header::HOST, api)
            .bearer_auth(t),
        Credential::Mcp(t) => http
            .get(format!("{gateway}/api/mcp/whoami"))
            .header(reqwest::header::HOST, api)
            .bearer_auth(t),
    };
    Ok(req.send().await?.status().as_u16())
}

/// The first 300 characters of a body, for a failure line.
fn excerpt(body: &str) -> String {
    body.chars().take(300).collect()
}

/// A region whose workspace's admin configured Okta from the Integrations > Okta page
/// (Setup Steps 1–4, provisioning not connected): the starting point of the
/// troubleshooting checks.
#[derive(Debug)]
pub struct Configured {
    /// The workspace.
    pub team_id: String,
    /// The values the page showed.
    pub values: SetupValues,
    /// The Okta app configured with them.
    pub app: AppHandle,
    /// The admin's browser, signed in.
    pub admin: Web,
}

/// Creates a workspace in `region`, signs its admin in, and configures `sim`'s new app
/// and the page with each other's values (`jit`: just-in-time provisioning).
pub async fn configure(
    target: &StoryTarget<'_>,
    sim: &OktaSim,
    region: Region,
    jit: bool,
) -> anyhow::Result<Configured> {
    let run = Run::new(target, sim, region);
    let mut admin = Web::new(&run.gateway);
    let (team_id, _, link) = target.workspace(region, "Acme", &run.admin).await?;
    run.sign_in_with_link(&mut admin, &link).await?;
    let values = run.setup_values(&mut admin).await?;
    run.values_belong_to_region(&values, &team_id)?;
    let app = sim.add_app(SeedApp {
        name: format!("closedloop-{region}"),
        client_id: None,
        client_secret: None,
        redirect_uris: vec![values.redirect_uri.clone()],
        post_logout_redirect_uris: vec![values.post_logout_uri.clone()],
    })?;
    run.save_setup(&mut admin, &app, jit).await?;
    Ok(Configured {
        team_id,
        values,
        app,
        admin,
    })
}

impl Configured {
    /// Connects provisioning through the OAuth consent (Step 5) at `base_url` (the
    /// page's, or a mistyped one); returns the SCIM access token.
    pub async fn connect_provisioning_at(
        &mut self,
        target: &StoryTarget<'_>,
        sim: &OktaSim,
        region: Region,
        base_url: &str,
    ) -> anyhow::Result<String> {
        let run = Run::new(target, sim, region);
        let mut values = self.values.clone();
        values.scim_base_url = base_url.to_owned();
        Ok(run
            .connect_provisioning(&mut self.admin, &self.app, &values)
            .await?
            .0)
    }
}
