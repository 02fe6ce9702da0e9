// gst-matrixrtc
// Copyright (C) 2026 The gst-matrixrtc authors
//
// This library is free software; you can redistribute it and/or
// modify it under the terms of the GNU Library General Public
// License as published by the Free Software Foundation; either
// version 2.1 of the License, or (at your option) any later version.

// A real matrix-js-sdk 43 peer with its own Rust crypto, for the Olm/Megolm
// interop test (tests/interop/olm/olm_interop.c drives it).
//
// Environment: MRTC_HS_URL, MRTC_USER, MRTC_PASSWORD, MRTC_ROOM_ID,
// MRTC_MODE (legacy: state event org.matrix.msc3401.call.member; sticky:
// Megolm-encrypted sticky org.matrix.msc4143.rtc.member, hashed LiveKit
// identities, as Element Call's matrix_2_0 mode).
// It logs in, starts its crypto, joins the (encrypted) room and the call
// with managed media keys, and prints one JSON object per line on stdout:
//   {"event":"ready","userId","deviceId","memberId"}
//   {"event":"memberships","members":[{userId,deviceId,identity}]}
//   {"event":"key","index","identity","userId","deviceId","sha256"}
//       (media keys js-sdk uses, its own and received ones; only a hash)
//   {"event":"room-event","eventId","sender","type","body","encrypted"}
//   {"event":"sent","eventId"}
// Commands on stdin, one per line: "send <body>" sends an
// org.example.secret room event (Megolm-encrypted by js-sdk), "leave".

import { createHash, randomUUID } from "node:crypto";
import { createInterface } from "node:readline";

// Node 20 lacks Promise.withResolvers, which js-sdk 43 uses.
if (typeof Promise.withResolvers !== "function") {
    Promise.withResolvers = function () {
        let resolve, reject;
        const promise = new Promise((res, rej) => {
            resolve = res;
            reject = rej;
        });
        return { promise, resolve, reject };
    };
}

// stdout carries only our JSON lines: the SDK's logging goes to stderr.
for (const level of ["log", "info", "debug", "warn", "trace"]) console[level] = console.error;

const sdk = await import("matrix-js-sdk");
const rtc = await import("matrix-js-sdk/lib/matrixrtc/index.js");
const { logger } = await import("matrix-js-sdk/lib/logger.js");
logger.setLevel(process.env.MRTC_JS_DEBUG ? "debug" : "warn");

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + "\n");
}

function fail(message) {
    emit({ event: "error", message: String(message) });
    process.exit(1);
}

const env = (name) => process.env[name] ?? fail(`${name} not set`);
const baseUrl = env("MRTC_HS_URL");
const roomId = env("MRTC_ROOM_ID");
const mode = process.env.MRTC_MODE ?? "legacy";
const transport = { type: "livekit", livekit_service_url: "http://127.0.0.1:8080" };

try {
    const login = await sdk.createClient({ baseUrl }).loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: env("MRTC_USER") },
        password: env("MRTC_PASSWORD"),
        initial_device_display_name: "js-sdk olm interop peer",
    });
    const client = sdk.createClient({
        baseUrl,
        accessToken: login.access_token,
        userId: login.user_id,
        deviceId: login.device_id,
    });
    await client.initRustCrypto({ useIndexedDB: false });

    const seen = new Set();
    const report = async (ev) => {
        if (ev.getRoomId() !== roomId) return;
        if (ev.isEncrypted()) await client.decryptEventIfNeeded(ev);
        if (ev.getType() !== "org.example.secret" || seen.has(ev.getId())) return;
        seen.add(ev.getId());
        emit({
            event: "room-event",
            eventId: ev.getId(),
            sender: ev.getSender(),
            type: ev.getType(),
            body: ev.getContent().body ?? null,
            encrypted: ev.isEncrypted(),
        });
    };
    client.on(sdk.RoomEvent.Timeline, (ev) => void report(ev).catch((e) => fail(e?.stack ?? e)));
    client.on(sdk.MatrixEventEvent.Decrypted, (ev) => void report(ev).catch((e) => fail(e?.stack ?? e)));

    const prepared = new Promise((resolve) => {
        client.on(sdk.ClientEvent.Sync, (state) => {
            if (state === "PREPARED" || state === "SYNCING") resolve();
        });
    });
    await client.startClient({ initialSyncLimit: 20 });
    await prepared;
    await client.joinRoom(roomId);
    let room = client.getRoom(roomId);
    for (let i = 0; (!room || room.getMyMembership() !== "join") && i < 100; i++) {
        await new Promise((r) => setTimeout(r, 100));
        room = client.getRoom(roomId);
    }
    if (!room) fail(`room ${roomId} not in the client`);

    const session = client.matrixRTC.getRoomSession(room);
    session.on(rtc.MatrixRTCSessionEvent.MembershipsChanged, (_old, memberships) =>
        emit({
            event: "memberships",
            members: memberships.map((m) => ({
                userId: m.userId,
                deviceId: m.deviceId,
                identity: m.rtcBackendIdentity,
            })),
        }),
    );
    session.on(rtc.MatrixRTCSessionEvent.EncryptionKeyChanged, (key, index, membership, identity) =>
        emit({
            event: "key",
            index,
            identity,
            userId: membership.userId,
            deviceId: membership.deviceId,
            sha256: createHash("sha256").update(key).digest("hex"),
        }),
    );
    const memberId = mode === "sticky" ? randomUUID() : `${login.user_id}:${login.device_id}`;
    session.joinRTCSession({ userId: login.user_id, deviceId: login.device_id, memberId }, [transport], transport, {
        unstableSendStickyEvents: mode === "sticky",
        manageMediaKeys: true,
        callIntent: "video",
        delayedLeaveEventDelayMs: 8000,
        delayedLeaveEventRestartMs: 2000,
    });
    emit({ event: "ready", userId: login.user_id, deviceId: login.device_id, memberId });

    const lines = createInterface({ input: process.stdin });
    for await (const line of lines) {
        const text = line.trim();
        if (text === "leave") break;
        if (text.startsWith("send ")) {
            const res = await client.sendEvent(roomId, "org.example.secret", { body: text.slice(5) });
            emit({ event: "sent", eventId: res.event_id });
        }
    }
    await session.leaveRoomSession(5000);
    emit({ event: "left" });
    client.stopClient();
    process.exit(0);
} catch (e) {
    fail(e?.stack ?? e);
}
