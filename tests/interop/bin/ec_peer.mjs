// gst-matrixrtc
// Copyright (C) 2026 The gst-matrixrtc authors
//
// This library is free software; you can redistribute it and/or
// modify it under the terms of the GNU Library General Public
// License as published by the Free Software Foundation; either
// version 2.1 of the License, or (at your option) any later version.

// An Element-Call-like participant for the call elements' interop test
// (tests/interop/bin/ecinterop.c): matrix-js-sdk 43's MatrixRTCSession
// joins the call (legacy membership, as Element Call's default
// compatibility mode) with the token service as its transport; the LiveKit
// token comes from the token service's legacy /sfu/get with an OpenID token,
// as Element Call asks for it; @livekit/rtc-node publishes a camera (left
// half red, right half blue, VP8) and a microphone (440 Hz), subscribes to
// everything and counts the decoded frames showing videotestsrc's SMPTE bars.
// With EC_PASSPHRASE, media is end-to-end encrypted with it as Element
// Call's shared key (rtc-node 1.1 cannot take per-participant keys, so
// js-sdk's per-member keys are not used here).
//
// Environment: MRTC_HS_URL, MRTC_USER, MRTC_PASSWORD, MRTC_ROOM_ID,
// MRTC_TRANSPORT_URL, EC_PASSPHRASE, EC_DURATION (seconds, default 30), EC_WANT_FRAMES
// (default 30). Output on stdout: {"event":"ready",...} once in the call
// and connected, then {"event":"result",...}; logs go to stderr.

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

for (const level of ["log", "info", "debug", "warn", "trace"]) console[level] = console.error;

const sdk = await import("matrix-js-sdk");
const { logger } = await import("matrix-js-sdk/lib/logger.js");
logger.setLevel("warn");
const lk = await import("@livekit/rtc-node");

// The test closes our stdin once it has seen our media.
process.stdin.resume();

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
const serviceUrl = env("MRTC_TRANSPORT_URL");
const transport = { type: "livekit", livekit_service_url: serviceUrl };
const duration = Number(process.env.EC_DURATION || 30) * 1000;
const wantFrames = Number(process.env.EC_WANT_FRAMES || 30);
const WIDTH = 320;
const HEIGHT = 240;

// videotestsrc pattern=smpte, top two thirds
const BARS = [
    [255, 255, 255], [255, 255, 0], [0, 255, 255], [0, 255, 0],
    [255, 0, 255], [255, 0, 0], [0, 0, 255],
];

function showsBars(frame) {
    const rgba = frame.convert(lk.VideoBufferType.RGBA);
    const y = Math.floor(rgba.height / 3);
    for (let i = 0; i < 7; i++) {
        const x = Math.floor(((2 * i + 1) * rgba.width) / 14);
        const o = (y * rgba.width + x) * 4;
        for (let c = 0; c < 3; c++) {
            if (Math.abs(rgba.data[o + c] - BARS[i][c]) > 48) return false;
        }
    }
    return true;
}

try {
    const login = await sdk.createClient({ baseUrl }).loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: env("MRTC_USER") },
        password: env("MRTC_PASSWORD"),
        initial_device_display_name: "Element-Call-like interop peer",
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
    const memberId = `${login.user_id}:${login.device_id}`;
    session.joinRTCSession({ userId: login.user_id, deviceId: login.device_id, memberId }, [transport], transport, {
        manageMediaKeys: false,
        callIntent: "video",
        delayedLeaveEventDelayMs: 8000,
        delayedLeaveEventRestartMs: 2000,
    });

    // The LiveKit token, as Element Call gets it (legacy endpoint).
    const openid = await client.getOpenIdToken();
    const resp = await fetch(new URL("sfu/get", serviceUrl.endsWith("/") ? serviceUrl : serviceUrl + "/"), {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ room: roomId, openid_token: openid, device_id: login.device_id }),
    });
    if (!resp.ok) fail(`token service: HTTP ${resp.status} ${await resp.text()}`);
    const { url, jwt } = await resp.json();

    const stats = { video_frames: 0, bars_frames: 0, audio_frames: 0, tracks: [] };
    const lkRoom = new lk.Room();
    let running = true;
    lkRoom.on(lk.RoomEvent.TrackSubscribed, (track, publication, participant) => {
        stats.tracks.push({ identity: participant.identity, kind: track.kind === lk.TrackKind.KIND_VIDEO ? "video" : "audio" });
        if (track.kind === lk.TrackKind.KIND_VIDEO) {
            (async () => {
                for await (const ev of new lk.VideoStream(track)) {
                    stats.video_frames++;
                    if (showsBars(ev.frame)) stats.bars_frames++;
                    if (!running) break;
                }
            })().catch((e) => console.error("video stream:", e));
        } else {
            (async () => {
                for await (const frame of new lk.AudioStream(track, 48000, 1)) {
                    if (frame.samplesPerChannel > 0) stats.audio_frames++;
                    if (!running) break;
                }
            })().catch((e) => console.error("audio stream:", e));
        }
    });
    const passphrase = process.env.EC_PASSPHRASE;
    const options = { autoSubscribe: true, dynacast: false };
    if (passphrase) {
        // Element Call's shared-key mode: the passphrase is the shared key
        // (PBKDF2, LiveKit's default salt), GCM frame encryption.
        options.encryption = {
            keyProviderOptions: {
                sharedKey: new TextEncoder().encode(passphrase),
                ratchetSalt: new TextEncoder().encode("LKFrameEncryptionKey"),
                ratchetWindowSize: 0,
                failureTolerance: -1,
                keyRingSize: 16,
                keyDerivationFunction: 0, // PBKDF2
            },
            encryptionType: lk.EncryptionType.GCM,
        };
    }
    await lkRoom.connect(url, jwt, options);
    if (passphrase) lkRoom.e2eeManager?.setEnabled(true);

    const videoSource = new lk.VideoSource(WIDTH, HEIGHT);
    await lkRoom.localParticipant.publishTrack(
        lk.LocalVideoTrack.createVideoTrack("camera", videoSource),
        new lk.TrackPublishOptions({ source: lk.TrackSource.SOURCE_CAMERA, videoCodec: lk.VideoCodec.VP8, simulcast: false }),
    );
    const audioSource = new lk.AudioSource(48000, 1);
    await lkRoom.localParticipant.publishTrack(
        lk.LocalAudioTrack.createAudioTrack("microphone", audioSource),
        new lk.TrackPublishOptions({ source: lk.TrackSource.SOURCE_MICROPHONE }),
    );
    emit({ event: "ready", userId: login.user_id, deviceId: login.device_id, identity: lkRoom.localParticipant.identity });

    // left half red, right half blue
    const rgba = new Uint8Array(WIDTH * HEIGHT * 4);
    for (let y = 0; y < HEIGHT; y++) {
        for (let x = 0; x < WIDTH; x++) {
            const o = (y * WIDTH + x) * 4;
            rgba[o] = x < WIDTH / 2 ? 230 : 20;
            rgba[o + 1] = 20;
            rgba[o + 2] = x < WIDTH / 2 ? 20 : 230;
            rgba[o + 3] = 255;
        }
    }
    const start = Date.now();
    const videoTimer = setInterval(() => {
        videoSource.captureFrame(new lk.VideoFrame(rgba, WIDTH, HEIGHT, lk.VideoBufferType.RGBA), BigInt((Date.now() - start) * 1000));
    }, 1000 / 15);
    let phase = 0;
    while (Date.now() - start < duration) {
        const samples = new Int16Array(480);
        for (let i = 0; i < samples.length; i++, phase++) {
            samples[i] = Math.round(8000 * Math.sin((2 * Math.PI * 440 * phase) / 48000));
        }
        await audioSource.captureFrame(new lk.AudioFrame(samples, 48000, 1, 480));
        // keep publishing until the test has seen us too (it closes stdin)
        if (stats.bars_frames >= wantFrames && stats.audio_frames >= 50 && process.stdin.readableEnded) break;
    }
    running = false;
    clearInterval(videoTimer);
    emit({ event: "result", ...stats });
    await session.leaveRoomSession(5000);
    await lkRoom.disconnect();
    await lk.dispose();
    client.stopClient();
    process.exit(0);
} catch (e) {
    fail(e?.stack ?? e);
}
