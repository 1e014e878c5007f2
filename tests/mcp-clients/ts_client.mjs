// The official MCP TypeScript SDK's own OAuth client against a real ClosedLoop stack
// (issue 17), driven by the e2e tests `mcp::the_official_typescript_sdk_…`
// (tests/tests/e2e/mcp.rs), as python_client.py is for the Python SDK.
//
// The SDK discovers the authorization server from the MCP endpoint's 401, registers
// (MODE=dcr) or presents its Client ID Metadata Document's URL as its client id
// (MODE=document), runs the authorization code flow with PKCE and `resource`, calls
// `whoami`, refreshes, and is cut off by Universal Logout. The browser part is the
// test's: redirectToAuthorization hands the URL to the test's bridge (BRIDGE_URL),
// whose signed-in cookie jar consents and answers with the redirect to the client.
//
// Adapted for the test stack only: `*.localhost` resolves to loopback (the gateway).
// The SDK's own metadata-document path takes only https:// URLs, and the test serves
// its document over plain HTTP on loopback (the worker fetches it under the
// development switch), so in MODE=document the client information is given as
// statically known (`client_id` = the document's URL): the server still fetches,
// validates and uses the document.
//
// Prints one JSON line with what happened.
import dns from 'node:dns';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const lookup = dns.lookup;
dns.lookup = (host, options, callback) => {
  if (typeof options === 'function') {
    callback = options;
    options = {};
  }
  return lookup.call(dns, host.endsWith('.localhost') ? '127.0.0.1' : host, options, callback);
};

const { MCP_URL, BRIDGE_URL, MODE, REDIRECT_URI, DOCUMENT_URL } = process.env;

let authorizations = 0;
let callbackUrl;

class Provider {
  constructor() {
    this.saved = { tokens: undefined, client: undefined, verifier: undefined };
    if (MODE === 'document') this.saved.client = { client_id: DOCUMENT_URL };
  }
  get redirectUrl() {
    return REDIRECT_URI;
  }
  get clientMetadata() {
    return {
      client_name: `TypeScript SDK e2e (${MODE})`,
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      scope: 'mcp',
    };
  }
  clientInformation() {
    return this.saved.client;
  }
  saveClientInformation(info) {
    this.saved.client = info;
  }
  tokens() {
    return this.saved.tokens;
  }
  saveTokens(tokens) {
    this.saved.tokens = tokens;
  }
  async redirectToAuthorization(url) {
    authorizations += 1;
    const r = await fetch(`${BRIDGE_URL}/authorize`, { method: 'POST', body: url.toString() });
    const text = await r.text();
    if (!r.ok) throw new Error(`browser: ${text}`);
    callbackUrl = new URL(text);
  }
  // What a real client does when the server refuses its credentials: forget them, so
  // that the SDK authorizes again.
  invalidateCredentials(scope) {
    if (scope === 'all' || scope === 'tokens') this.saved.tokens = undefined;
    if (scope === 'all' || scope === 'client') this.saved.client = MODE === 'document' ? { client_id: DOCUMENT_URL } : undefined;
    if (scope === 'all' || scope === 'verifier') this.saved.verifier = undefined;
  }
  saveCodeVerifier(verifier) {
    this.saved.verifier = verifier;
  }
  codeVerifier() {
    return this.saved.verifier;
  }
}

async function step(name) {
  const r = await fetch(`${BRIDGE_URL}/step`, { method: 'POST', body: name });
  if (!r.ok) throw new Error(`step ${name}: ${await r.text()}`);
}

/** Connects (authorizing when the server says 401), lists the tools, calls whoami. */
async function whoami(provider) {
  const attempt = async () => {
    const client = new Client({ name: 'closedloop-e2e', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(MCP_URL), { authProvider: provider });
    await client.connect(transport);
    try {
      const tools = await client.listTools();
      if (tools.tools.map((t) => t.name).join() !== 'whoami') throw new Error(JSON.stringify(tools));
      const result = await client.callTool({ name: 'whoami', arguments: {} });
      return result.content[0].text;
    } finally {
      await client.close();
    }
  };
  try {
    return await attempt();
  } catch (e) {
    if (!(e instanceof UnauthorizedError) || !callbackUrl) throw e;
    const code = callbackUrl.searchParams.get('code');
    if (callbackUrl.searchParams.get('iss') !== new URL(MCP_URL).origin) {
      throw new Error(`unexpected iss in ${callbackUrl}`);
    }
    callbackUrl = undefined;
    const transport = new StreamableHTTPClientTransport(new URL(MCP_URL), { authProvider: provider });
    await transport.finishAuth(code);
    return await attempt();
  }
}

const provider = new Provider();
const report = {};
report.first = await whoami(provider);
report.client_id = provider.saved.client?.client_id;
const firstToken = provider.saved.tokens.access_token;
// The access token is refused as expired by nobody but the client: ask the SDK to
// refresh by presenting a token the server no longer accepts.
provider.saved.tokens = { ...provider.saved.tokens, access_token: 'clk_us_mcp_expired' };
report.second = await whoami(provider);
report.refreshed = provider.saved.tokens.access_token !== firstToken;
report.authorizations = authorizations;
await step('universal-logout');
try {
  report.after_logout = await whoami(provider);
} catch (e) {
  report.after_logout_error = String(e).slice(0, 500);
}
report.authorizations_after_logout = authorizations;
console.log(JSON.stringify(report));
