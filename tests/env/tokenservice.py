#!/usr/bin/env python3
# gst-matrixrtc
# Copyright (C) 2026 The gst-matrixrtc authors
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A local stand-in for lk-jwt-service, the MatrixRTC LiveKit token service.

Production deployments run element-hq/lk-jwt-service. Its Go module path cannot be fetched from the
Go module proxy, so the local test stack runs this small service instead. It honours the same HTTP
contract, written from the service's documented behaviour, on the official LiveKit server SDK
(PyPI `livekit-api`) for the JWT and the room API:

- ``POST /sfu/get`` (legacy) ``{room, openid_token, device_id}`` and ``POST /get_token`` (MSC4195)
  ``{room_id, slot_id, openid_token, member: {id, claimed_user_id, claimed_device_id}}``, both
  replying ``{"url": LIVEKIT_URL, "jwt": ...}``; unknown JSON fields anywhere give 400 ``M_NOT_JSON``;
  missing fields 400 ``M_BAD_JSON``; a bad OpenID token 401 ``M_UNAUTHORIZED``.
- the OpenID token is checked against the homeserver's federation API over HTTPS
  (``GET https://<matrix_server_name>/_matrix/federation/v1/openid/userinfo``);
- LiveKit room = base64_unpadded(sha256(json([room_id, slot_id]))), legacy slot ``m.call#ROOM``;
  identity = ``@user:server:DEVICE`` (legacy) or base64_unpadded(sha256(json([user, device, member])));
- users of a full-access homeserver get the room created on the SFU (empty timeout 300 s, departure
  timeout 20 s); JWTs are valid for one hour with roomJoin, canPublish, canSubscribe and
  canUpdateOwnMetadata.

Not implemented: delegation of delayed leave events (``delay_id``; answered with 400 M_BAD_JSON and a
clear message) and the SFU webhook. Configured with lk-jwt-service's environment variables.
"""

import asyncio
import base64
import hashlib
import json
import logging
import os
import signal
import ssl
import sys
from datetime import timedelta

import aiohttp
from aiohttp import web
from livekit import api

LOG = logging.getLogger("tokenservice")
LEGACY_SLOT_ID = "m.call#ROOM"
SKIP_VERIFY_VALUE = "YES_I_KNOW_WHAT_I_AM_DOING"

OPENID_FIELDS = {"access_token": str, "token_type": str, "matrix_server_name": str, "expires_in": int}
MEMBER_FIELDS = {"id": str, "claimed_user_id": str, "claimed_device_id": str}
DELAY_FIELDS = {"delay_id": str, "delay_timeout": int, "delay_cs_api_url": str}
LEGACY_FIELDS = {"room": str, "openid_token": OPENID_FIELDS, "device_id": str, **DELAY_FIELDS}
GET_TOKEN_FIELDS = {"room_id": str, "slot_id": str, "openid_token": OPENID_FIELDS,
                    "member": MEMBER_FIELDS, **DELAY_FIELDS}


class MatrixError(Exception):
    def __init__(self, status, errcode, error):
        super().__init__(error)
        self.status = status
        self.errcode = errcode
        self.error = error


def go_json_marshal_strings(strings):
    """json.Marshal of a []string in Go: compact, UTF-8, with <, >, &, U+2028 and U+2029 escaped."""
    text = json.dumps(strings, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text.encode("utf-8")


def unpadded_b64_sha256(strings):
    digest = hashlib.sha256(go_json_marshal_strings(strings)).digest()
    return base64.b64encode(digest).decode("ascii").rstrip("=")


def livekit_room_alias(room_id, slot_id):
    return unpadded_b64_sha256([room_id, slot_id])


def livekit_identity(user_id, device_id, member_id):
    return unpadded_b64_sha256([user_id, device_id, member_id])


def decode_strict(value, schema, path="body"):
    """Go's json decoding with DisallowUnknownFields: reject unknown keys and wrong types;
    absent keys take the zero value."""
    if not isinstance(value, dict):
        raise MatrixError(400, "M_NOT_JSON", "Error reading request")
    out = {}
    for key, item in value.items():
        if key not in schema:
            LOG.info("rejecting unknown field %s.%s", path, key)
            raise MatrixError(400, "M_NOT_JSON", "Error reading request")
        kind = schema[key]
        if isinstance(kind, dict):
            out[key] = decode_strict(item, kind, f"{path}.{key}") if item is not None else {}
        elif item is None:
            continue
        elif kind is int and (isinstance(item, bool) or not isinstance(item, (int, float))
                              or (isinstance(item, float) and not item.is_integer())):
            raise MatrixError(400, "M_NOT_JSON", "Error reading request")
        elif kind is str and not isinstance(item, str):
            raise MatrixError(400, "M_NOT_JSON", "Error reading request")
        else:
            out[key] = int(item) if kind is int else item
    for key, kind in schema.items():
        if key not in out:
            out[key] = decode_zero(kind)
    return out


def decode_zero(kind):
    if isinstance(kind, dict):
        return {k: decode_zero(v) for k, v in kind.items()}
    return kind()


def check_delay_params(req):
    has_all = req["delay_id"] != "" and req["delay_timeout"] > 0
    has_any = req["delay_id"] != "" or req["delay_timeout"] > 0
    if has_any and not has_all:
        raise MatrixError(400, "M_BAD_JSON", "The request body is missing `delay_id` or `delay_timeout`")
    if has_all:
        raise MatrixError(400, "M_BAD_JSON",
                          "Delegation of delayed events is not implemented by this local stand-in "
                          "for lk-jwt-service")


class TokenService:
    def __init__(self):
        self.livekit_url = os.environ["LIVEKIT_URL"]
        self.key = os.environ.get("LIVEKIT_KEY") or read_file_env("LIVEKIT_KEY_FROM_FILE")
        self.secret = os.environ.get("LIVEKIT_SECRET") or read_file_env("LIVEKIT_SECRET_FROM_FILE")
        if not self.key or not self.secret:
            raise SystemExit("LIVEKIT_KEY and LIVEKIT_SECRET (or *_FROM_FILE) are required")
        full_access = os.environ.get("LIVEKIT_FULL_ACCESS_HOMESERVERS")
        if not full_access:
            raise SystemExit("LIVEKIT_FULL_ACCESS_HOMESERVERS is required (comma list or *)")
        self.full_access = [s.strip() for s in full_access.split(",") if s.strip()]
        self.skip_verify = os.environ.get("LIVEKIT_INSECURE_SKIP_VERIFY_TLS") == SKIP_VERIFY_VALUE
        self.http = None

    def is_full_access(self, server_name):
        return self.full_access == ["*"] or server_name in self.full_access

    async def start(self, app):
        ssl_context = ssl.create_default_context()
        if self.skip_verify:
            ssl_context.check_hostname = False
            ssl_context.verify_mode = ssl.CERT_NONE
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_context),
                                          timeout=aiohttp.ClientTimeout(total=10))

    async def stop(self, app):
        await self.http.close()

    async def federation_base(self, server_name):
        """Matrix server discovery for the federation API: an explicit port or an IP literal is
        used as is; otherwise .well-known/matrix/server delegation, else port 8448 (no SRV)."""
        if has_explicit_port(server_name):
            return f"https://{server_name}"
        if is_ip_literal(server_name):
            return f"https://{server_name}:8448"
        try:
            async with self.http.get(f"https://{server_name}/.well-known/matrix/server") as resp:
                if resp.status == 200:
                    delegated = (await resp.json(content_type=None)).get("m.server")
                    if isinstance(delegated, str) and delegated:
                        return f"https://{delegated}" if ":" in delegated else f"https://{delegated}:8448"
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            pass
        return f"https://{server_name}:8448"

    async def verify_openid(self, token, claimed_user_id):
        unauthorised = MatrixError(401, "M_UNAUTHORIZED", "The request could not be authorised.")
        if not token["access_token"] or not token["matrix_server_name"]:
            raise unauthorised
        base = await self.federation_base(token["matrix_server_name"])
        try:
            async with self.http.get(f"{base}/_matrix/federation/v1/openid/userinfo",
                                     params={"access_token": token["access_token"]}) as resp:
                body = await resp.json(content_type=None)
                if resp.status != 200 or not isinstance(body, dict):
                    LOG.info("OpenID token rejected by %s: HTTP %d", base, resp.status)
                    raise unauthorised
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as err:
            LOG.info("OpenID userinfo lookup at %s failed: %s", base, type(err).__name__)
            raise unauthorised
        sub = body.get("sub")
        if not isinstance(sub, str) or not sub.startswith("@"):
            raise unauthorised
        # The user id must belong to the server that issued the token.
        if sub.split(":", 1)[-1] != token["matrix_server_name"]:
            LOG.warning("OpenID subject %s is not on %s", sub, token["matrix_server_name"])
            raise unauthorised
        if claimed_user_id and claimed_user_id != sub:
            LOG.warning("claimed_user_id %s does not match the token subject %s", claimed_user_id, sub)
            raise unauthorised
        return sub

    def join_token(self, room_alias, identity):
        grants = api.VideoGrants(room_join=True, room_create=False, room=room_alias,
                                 can_publish=True, can_subscribe=True, can_update_own_metadata=True)
        return (api.AccessToken(self.key, self.secret).with_identity(identity)
                .with_grants(grants).with_ttl(timedelta(hours=1)).to_jwt())

    async def create_room(self, room_alias):
        http_url = self.livekit_url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)
        async with api.LiveKitAPI(http_url, self.key, self.secret) as lkapi:
            await lkapi.room.create_room(api.CreateRoomRequest(
                name=room_alias, empty_timeout=5 * 60, departure_timeout=20, max_participants=0))

    async def issue(self, server_name, room_alias, identity):
        jwt = self.join_token(room_alias, identity)
        if self.is_full_access(server_name):
            try:
                await self.create_room(room_alias)
            except Exception as err:  # the SDK raises several types; any failure is a 500
                LOG.error("creating LiveKit room failed: %s", err)
                raise MatrixError(500, "M_UNKNOWN", "Unable to create room on SFU")
        return {"url": self.livekit_url, "jwt": jwt}

    async def sfu_get(self, body):
        req = decode_strict(body, LEGACY_FIELDS)
        if not req["room"]:
            raise MatrixError(400, "M_BAD_JSON", "Missing room parameter")
        token = req["openid_token"]
        if not token["access_token"] or not token["matrix_server_name"]:
            raise MatrixError(400, "M_BAD_JSON", "Missing OpenID token parameters")
        check_delay_params(req)
        user_id = await self.verify_openid(token, "")
        identity = f"{user_id}:{req['device_id']}"
        room_alias = livekit_room_alias(req["room"], LEGACY_SLOT_ID)
        LOG.info("legacy token for %s device %s in room %s", user_id, req["device_id"], req["room"])
        return await self.issue(token["matrix_server_name"], room_alias, identity)

    async def get_token(self, body):
        req = decode_strict(body, GET_TOKEN_FIELDS)
        if not req["room_id"] or not req["slot_id"]:
            raise MatrixError(400, "M_BAD_JSON", "The request body is missing `room_id` or `slot_id`")
        member = req["member"]
        if not member["id"] or not member["claimed_user_id"] or not member["claimed_device_id"]:
            raise MatrixError(400, "M_BAD_JSON", "The request body `member` is missing a `id`, "
                              "`claimed_user_id` or `claimed_device_id`")
        token = req["openid_token"]
        if not token["access_token"] or not token["matrix_server_name"]:
            raise MatrixError(400, "M_BAD_JSON", "The request body `openid_token` is missing a "
                              "`access_token` or `matrix_server_name`")
        check_delay_params(req)
        user_id = await self.verify_openid(token, member["claimed_user_id"])
        identity = livekit_identity(user_id, member["claimed_device_id"], member["id"])
        room_alias = livekit_room_alias(req["room_id"], req["slot_id"])
        LOG.info("token for %s device %s in room %s slot %s", user_id, member["claimed_device_id"],
                 req["room_id"], req["slot_id"])
        return await self.issue(token["matrix_server_name"], room_alias, identity)


def has_explicit_port(server_name):
    if server_name.startswith("["):
        return "]:" in server_name
    _, sep, port = server_name.rpartition(":")
    return bool(sep) and port.isdigit()


def is_ip_literal(server_name):
    if server_name.startswith("["):
        return True
    return all(part.isdigit() for part in server_name.split(".")) and server_name.count(".") == 3


def read_file_env(name):
    path = os.environ.get(name)
    if not path:
        return None
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST",
    "Access-Control-Allow-Headers": "Accept, Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token",
}


def json_endpoint(handler):
    async def wrapped(request):
        if request.method == "OPTIONS":
            return web.Response(status=200, headers=CORS_HEADERS, content_type="application/json")
        if request.method != "POST":
            return web.Response(status=405, headers=CORS_HEADERS)
        try:
            try:
                body = json.loads(await request.read())
            except (ValueError, UnicodeDecodeError):
                raise MatrixError(400, "M_NOT_JSON", "Error reading request")
            reply, status = await handler(body), 200
        except MatrixError as err:
            reply, status = {"errcode": err.errcode, "error": err.error}, err.status
        return web.Response(status=status, headers=CORS_HEADERS, content_type="application/json",
                            text=json.dumps(reply) + "\n")
    return wrapped


async def healthz(request):
    if request.method in ("GET", "HEAD"):
        return web.Response(status=200)
    return web.Response(status=405)


def make_app():
    service = TokenService()
    app = web.Application()
    app.on_startup.append(service.start)
    app.on_cleanup.append(service.stop)
    app.router.add_route("*", "/sfu/get", json_endpoint(service.sfu_get))
    app.router.add_route("*", "/get_token", json_endpoint(service.get_token))
    app.router.add_route("*", "/healthz", healthz)
    return app


def main():
    logging.basicConfig(level=os.environ.get("LIVEKIT_LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # aiohttp's access log would print query strings; none of ours carry secrets, but keep it off.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    bind = os.environ.get("LIVEKIT_JWT_BIND", ":8080")
    host, _, port = bind.rpartition(":")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    web.run_app(make_app(), host=host or "0.0.0.0", port=int(port), print=None, access_log=None)


if __name__ == "__main__":
    main()
