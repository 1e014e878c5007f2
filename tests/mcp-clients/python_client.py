"""The official MCP Python SDK's own OAuth client against a real ClosedLoop stack
(issue 17), driven by the e2e test `mcp::the_official_python_sdk_connects_and_is_cut_off_by_universal_logout`.

The SDK discovers the authorization server from the MCP endpoint's 401, identifies
itself with a Client ID Metadata Document (MODE=document) or registers (MODE=dcr),
runs the authorization code flow with PKCE and `resource`, calls `whoami`, refreshes,
and is cut off by Universal Logout. The browser part is the test's: the redirect
handler hands the authorization URL to the test's bridge (BRIDGE_URL), whose signed-in
cookie jar consents and answers with the redirect to the client; the test's steps
(Universal Logout) run when the script asks the bridge for them.

Only what the test stack needs is adapted, and nothing of the SDK's OAuth logic:
`*.localhost` names resolve to loopback (the stack's gateway), and the test serves the
client's metadata document over plain HTTP on loopback (the worker fetches it under
the development switch), which the SDK's client-side URL check would refuse.

Prints one JSON line with what happened.
"""

import asyncio
import json
import os
import socket
import time
from urllib.parse import parse_qs, urlparse

import httpx2
import mcp.client.auth.oauth2 as oauth2
import mcp.client.auth.utils as auth_utils
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

MCP_URL = os.environ["MCP_URL"]
BRIDGE = os.environ["BRIDGE_URL"]
MODE = os.environ["MODE"]
REDIRECT_URI = os.environ["REDIRECT_URI"]
DOCUMENT_URL = os.environ.get("DOCUMENT_URL")

_getaddrinfo = socket.getaddrinfo


def _loopback_localhost(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if isinstance(name, str) and name.endswith(".localhost"):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _loopback_localhost

if MODE == "document":
    loopback_document = lambda url: url == DOCUMENT_URL  # noqa: E731
    oauth2.is_valid_client_metadata_url = loopback_document
    auth_utils.is_valid_client_metadata_url = loopback_document


class Memory(TokenStorage):
    def __init__(self):
        self.tokens = None
        self.client_info = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


callbacks: list[str] = []
authorizations = 0


async def redirect_handler(url: str) -> None:
    global authorizations
    authorizations += 1
    async with httpx2.AsyncClient(timeout=60) as http:
        r = await http.post(f"{BRIDGE}/authorize", content=url)
    if r.status_code != 200:
        raise RuntimeError(f"browser: {r.text}")
    callbacks.append(r.text)


async def callback_handler() -> AuthorizationCodeResult:
    query = parse_qs(urlparse(callbacks.pop()).query)
    first = lambda k: query.get(k, [None])[0]  # noqa: E731
    return AuthorizationCodeResult(code=first("code"), state=first("state"), iss=first("iss"))


async def step(name: str) -> None:
    async with httpx2.AsyncClient(timeout=60) as http:
        r = await http.post(f"{BRIDGE}/step", content=name)
    r.raise_for_status()


async def whoami(provider: OAuthClientProvider) -> str:
    async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
        async with Client(streamable_http_client(MCP_URL, http_client=http), mode="legacy") as client:
            tools = await client.list_tools()
            assert [t.name for t in tools.tools] == ["whoami"], tools
            result = await client.call_tool("whoami", {})
            return result.content[0].text


async def main() -> None:
    storage = Memory()
    provider = OAuthClientProvider(
        server_url=MCP_URL,
        client_metadata=OAuthClientMetadata(
            client_name=f"Python SDK e2e ({MODE})",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
            scope="mcp",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
        client_metadata_url=DOCUMENT_URL if MODE == "document" else None,
    )
    report = {"client_id": None}
    report["first"] = await whoami(provider)
    report["client_id"] = storage.client_info.client_id
    first_token = storage.tokens.access_token
    # The access token is due: the SDK refreshes before the next call.
    provider.context.token_expiry_time = time.time() - 1
    report["second"] = await whoami(provider)
    report["refreshed"] = storage.tokens.access_token != first_token
    report["authorizations"] = authorizations
    await step("universal-logout")
    try:
        report["after_logout"] = await whoami(provider)
    except Exception as e:  # noqa: BLE001 - the refusal is what is reported
        report["after_logout_error"] = f"{type(e).__name__}: {e}"[:500]
    report["authorizations_after_logout"] = authorizations
    print(json.dumps(report))


asyncio.run(main())
