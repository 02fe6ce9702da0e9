// gst-matrixrtc
// Copyright (C) 2026 The gst-matrixrtc authors
//
// This library is free software; you can redistribute it and/or
// modify it under the terms of the GNU Library General Public
// License as published by the Free Software Foundation; either
// version 2.1 of the License, or (at your option) any later version.

// A real matrix-js-sdk 43 MatrixRTCSession peer for the interop test
// (tests/integration/matrix/mrtc_interop.c drives it).
//
// Environment: MRTC_HS_URL, MRTC_USER, MRTC_PASSWORD, MRTC_ROOM_ID,
// MRTC_MODE (legacy | sticky), MRTC_TRANSPORT_URL.
// It logs in, joins the room and the call (legacy state event, or sticky
// event as Element Call's matrix_2_0 mode), and prints one JSON object per
// line on stdout: {"event":"ready", ...}, {"event":"memberships",
// "members":[...]} whenever js-sdk's list changes, {"event":"left"}.
// Reading "leave" on stdin makes it leave the call and exit.

import { randomUUID } from "node:crypto";
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
const mode = env("MRTC_MODE");
const roomId = env("MRTC_ROOM_ID");
const transport = { type: "livekit", livekit_service_url: env("MRTC_TRANSPORT_URL") };

try {
    const login = await sdk.createClient({ baseUrl }).loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: env("MRTC_USER") },
        password: env("MRTC_PASSWORD"),
        initial_device_display_name: "js-sdk interop peer",
    });
    const client = sdk.createClient({
        baseUrl,
        accessToken: login.access_token,
        userId: login.user_id,
        deviceId: login.device_id,
    });

    const prepared = new Promise((resolve) => {
        client.on(sdk.ClientEvent.Sync, (state) => {
            if (state === "PREPARED" || state === "SYNCING") resolve();
        });
    });
    await client.startClient({ initialSyncLimit: 20 });
    await prepared;
    await client.joinRoom(roomId);
    let room = client.getRoom(roomId);
    for (let i = 0; !room && i < 100; i++) {
        await new Promise((r) => setTimeout(r, 100));
        room = client.getRoom(roomId);
    }
    if (!room) fail(`room ${roomId} not in the client`);

    const session = client.matrixRTC.getRoomSession(room);
    const describe = (memberships) =>
        memberships.map((m) => ({
            userId: m.userId,
            deviceId: m.deviceId,
            memberId: m.memberId,
            identity: m.rtcBackendIdentity,
            slotId: m.slotId,
            transport: m.getTransport(memberships[0]) ?? null,
        }));
    session.on(rtc.MatrixRTCSessionEvent.MembershipsChanged, (_old, memberships) =>
        emit({ event: "memberships", members: describe(memberships) }),
    );

    const memberId = mode === "sticky" ? randomUUID() : `${login.user_id}:${login.device_id}`;
    session.joinRTCSession({ userId: login.user_id, deviceId: login.device_id, memberId }, [transport], transport, {
        unstableSendStickyEvents: mode === "sticky",
        manageMediaKeys: false,
        callIntent: "video",
        delayedLeaveEventDelayMs: 8000,
        delayedLeaveEventRestartMs: 2000,
    });
    emit({
        event: "ready",
        userId: login.user_id,
        deviceId: login.device_id,
        memberId,
        members: describe(session.memberships),
    });

    const lines = createInterface({ input: process.stdin });
    for await (const line of lines) {
        if (line.trim() === "leave") break;
    }
    await session.leaveRoomSession(5000);
    emit({ event: "left" });
    client.stopClient();
    process.exit(0);
} catch (e) {
    fail(e?.stack ?? e);
}
