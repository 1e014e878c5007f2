// An independent, OpenID-certified OpenID Provider (panva/oidc-provider) set up like an
// Okta org authorization server: issuer http://127.0.0.1:PORT (the development switch),
// endpoints under /oauth2/v1/, RS256 ID tokens, PKCE required, client_secret_basic.
// The relying party's tests sign in against it to prove the worker against code that
// no one here wrote.
//
// Environment: CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, POST_LOGOUT_REDIRECT_URI.
// It listens on a free port and prints one JSON line: {"event":"ready","issuer":…}.
// Sign-in is non-interactive: the account is the authorization request's login_hint,
// and consent is granted for what the request asks. Claims of the email and profile
// scopes are released at userinfo only (the provider's conformant default), so the
// relying party's userinfo path is exercised too.

import http from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import { Provider } from 'oidc-provider';

const { CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, POST_LOGOUT_REDIRECT_URI } = process.env;
for (const [name, value] of Object.entries({ CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, POST_LOGOUT_REDIRECT_URI })) {
  if (!value) {
    console.error(`${name} is required`);
    process.exit(2);
  }
}

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', use: 'sig', alg: 'RS256' };

const account = (id) => ({
  accountId: id,
  async claims() {
    return { sub: id, email: id, email_verified: true, given_name: 'Kim', family_name: 'Test', name: 'Kim Test' };
  },
});

const provider = new Provider(issuer, {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [REDIRECT_URI],
    post_logout_redirect_uris: [POST_LOGOUT_REDIRECT_URI],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  }],
  jwks: { keys: [signingKey] },
  routes: {
    authorization: '/oauth2/v1/authorize',
    token: '/oauth2/v1/token',
    jwks: '/oauth2/v1/keys',
    userinfo: '/oauth2/v1/userinfo',
    end_session: '/oauth2/v1/logout',
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name'],
  },
  pkce: { required: () => true },
  cookies: { keys: ['closedloop-test-cookie-key'] },
  findAccount: (_ctx, id) => account(id),
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: { devInteractions: { enabled: false } },
});

const callback = provider.callback();

// The non-interactive login and consent.
async function interact(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  if (prompt.name === 'login') {
    const accountId = params.login_hint || 'user@example.test';
    return provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
  }
  if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  res.statusCode = 400;
  res.end(`unsupported prompt ${prompt.name}`);
}

server.on('request', (req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interact(req, res).catch((err) => {
      res.statusCode = 500;
      res.end(String(err));
    });
    return;
  }
  callback(req, res);
});

process.on('SIGTERM', () => process.exit(0));
console.log(JSON.stringify({ event: 'ready', issuer }));
