"""Microsoft Graph beta sign-ins and the identity platform's token endpoints, over HTTPS on loopback.

It answers in the documented shapes: OpenID configuration, the token endpoint for client credentials (a secret,
or a certificate's signed assertion, which is verified) and for the device code grant, and
``/beta/auditLogs/signIns`` filtered by ``createdDateTime`` and ``signInEventTypes/any(...)``, paged by
``@odata.nextLink``. On request it throttles one page (429 with Retry-After), answers the licence or permission
error, echoes what it was sent in an error (a careless server), or points a next link at another origin.
"""

from __future__ import annotations

import json
import re
import secrets
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt

from runbook_lib.scope.records import parse_time
from runbook_lib.simulator.certs import create_listener_certificate

TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "11111111-2222-4333-8444-555555555555"


class FakeEntra:
    def __init__(self, records: list[dict], *, page_size: int = 2, client_secret: str = "",
                 certificate_pem: bytes = b"", mode: str = "ok"):
        self.records = records
        self.page_size = page_size
        self.client_secret = client_secret
        self.certificate_pem = certificate_pem
        self.mode = mode  # ok, licence, permission, echo, elsewhere
        self.token = "eyJ0eXAiOiJKV1Qi." + secrets.token_urlsafe(32)
        self.throttle_next = 1  # how many sign-in requests answer 429 first
        self.log: list[dict] = []
        self.assertions_verified = 0
        self.certificate = create_listener_certificate("127.0.0.1", "entra-test")
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certificate.cert_path, self.certificate.key_path)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    @property
    def ca_path(self) -> str:
        return str(self.certificate.ca_path)

    def __enter__(self) -> "FakeEntra":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.certificate.remove()

    # --- answers ---------------------------------------------------------------------------------------------
    def openid(self, tenant: str) -> dict:
        base = f"{self.origin}/{tenant}"
        return {"issuer": f"{base}/v2.0", "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode"}

    def issue(self, tenant: str, form: dict) -> tuple[int, dict]:
        grant = form.get("grant_type", "")
        granted = {"token_type": "Bearer", "expires_in": 3599, "access_token": self.token}
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            return (200, granted) if form.get("device_code") == "device-code-1" else (400, {"error": "bad_code"})
        if grant != "client_credentials" or form.get("client_id") != CLIENT_ID:
            return 400, {"error": "unauthorized_client", "error_description": "AADSTS700016: Application not found."}
        if "client_secret" in form:
            if form["client_secret"] == self.client_secret:
                return 200, granted
            return 401, {"error": "invalid_client", "error_description":
                         f"AADSTS7000215: Invalid client secret provided: {form['client_secret']}"}
        assertion = form.get("client_assertion", "")
        from cryptography import x509

        public_key = x509.load_pem_x509_certificate(self.certificate_pem).public_key()
        try:
            claims = jwt.decode(assertion, public_key, algorithms=["RS256", "PS256"],
                                audience=self.openid(tenant)["token_endpoint"])
        except jwt.PyJWTError as exc:
            return 401, {"error": "invalid_client", "error_description": f"AADSTS700027: {exc}"}
        if claims.get("iss") != CLIENT_ID or claims.get("sub") != CLIENT_ID:
            return 401, {"error": "invalid_client", "error_description": "AADSTS700027: wrong issuer"}
        self.assertions_verified += 1
        return 200, granted

    def sign_ins(self, query: dict, authorization: str) -> tuple[int, dict, dict]:
        if authorization != f"Bearer {self.token}":
            return 401, {}, {"error": {"code": "InvalidAuthenticationToken", "message": "Access token is empty."}}
        if self.throttle_next > 0:
            self.throttle_next -= 1
            return 429, {"Retry-After": "1"}, {"error": {"code": "TooManyRequests", "message": "Too many requests"}}
        if self.mode == "licence":
            return 403, {}, {"error": {"code": "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                                       "message": "Neither tenant is B2C or tenant doesn't have premium license"}}
        if self.mode == "permission":
            return 403, {}, {"error": {"code": "Authorization_RequestDenied",
                                       "message": "Insufficient privileges to complete the operation."}}
        if self.mode == "echo":
            return 400, {}, {"error": {"code": "BadRequest", "message": f"Invalid filter clause near {authorization}"}}
        text = query.get("$filter", "")
        kind = re.search(r"signInEventTypes/any\(t: t eq '(\w+)'\)", text)
        since = re.search(r"createdDateTime ge (\S+)", text)
        until = re.search(r"createdDateTime le (\S+)", text)
        chosen = [r for r in self.records
                  if r["signInEventTypes"][0] == (kind[1] if kind else "interactiveUser")
                  and (not since or parse_time(r["createdDateTime"]) >= parse_time(since[1]))
                  and (not until or parse_time(r["createdDateTime"]) <= parse_time(until[1]))]
        start = int(query.get("$skiptoken", "0"))
        page = {"@odata.context": f"{self.origin}/beta/$metadata#auditLogs/signIns",
                "value": chosen[start:start + self.page_size]}
        if start + self.page_size < len(chosen):
            origin = "https://127.0.0.2:9" if self.mode == "elsewhere" else self.origin
            page["@odata.nextLink"] = (f"{origin}/beta/auditLogs/signIns?"
                                       + urlencode({"$filter": text, "$skiptoken": start + self.page_size}))
        return 200, {}, page

    def _handler(self):
        entra = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self, status: int, body: dict, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                entra.log.append({"method": "GET", "path": url.path, "query": query})
                openid = re.fullmatch(r"/([^/]+)/v2\.0/\.well-known/openid-configuration", url.path)
                if openid:
                    return self._answer(200, entra.openid(openid[1]))
                if url.path == "/beta/auditLogs/signIns":
                    status, headers, body = entra.sign_ins(query, self.headers.get("Authorization", ""))
                    return self._answer(status, body, headers)
                return self._answer(404, {"error": {"code": "NotFound", "message": url.path}})

            def do_POST(self):  # noqa: N802
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                entra.log.append({"method": "POST", "path": url.path, "grant": form.get("grant_type")})
                token = re.fullmatch(r"/([^/]+)/oauth2/v2\.0/token", url.path)
                if token:
                    status, body = entra.issue(token[1], form)
                    return self._answer(status, body)
                if re.fullmatch(r"/[^/]+/oauth2/v2\.0/devicecode", url.path):
                    return self._answer(200, {
                        "device_code": "device-code-1", "user_code": "TLSR-8F2Q",
                        "verification_uri": "https://microsoft.com/devicelogin", "expires_in": 900, "interval": 1,
                        "message": "To sign in, use a web browser to open the page https://microsoft.com/devicelogin "
                                   "and enter the code TLSR-8F2Q to authenticate."})
                return self._answer(404, {"error": "not_found"})

        return Handler
