// gst-matrixrtc
// Copyright (C) 2026 The gst-matrixrtc authors
// SPDX-License-Identifier: LGPL-2.1-or-later
//
// Offline interop test of ext/olm against matrix-sdk-crypto-wasm (the crypto
// matrix-js-sdk 43 uses), no server: the HTTP requests of both sides are
// answered here with what a homeserver would return.
//   node olm-interop.mjs PATH/TO/olmpeer PATH/TO/matrix-sdk-crypto-wasm/node.mjs
// Checks: device keys (canonical JSON signatures) accepted both ways; Olm
// to-device io.element.call.encryption_keys both ways (pre-key and normal
// messages); m.room_key and Megolm room events both ways; forged sender and
// tampered messages refused by us.

import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [olmpeer, wasmPath] = process.argv.slice(2);
if (!olmpeer || !wasmPath) {
  console.error("usage: node olm-interop.mjs OLMPEER CRYPTO_WASM_NODE_MJS");
  process.exit(2);
}
const sdk = await import(wasmPath);
const { OlmMachine, UserId, DeviceId, RoomId, RequestType, DeviceLists, EncryptionSettings,
  DecryptionSettings, TrustRequirement, ProcessedToDeviceEventType } = sdk;

const dir = mkdtempSync(join(tmpdir(), "olm-interop-"));
const STORE = join(dir, "ours.store");
const OURS = ["@ours:hs", "OURDEV"];
const ROOM = "!call:hs";
let failed = 0;

function peer(args, input, expectFailure = false) {
  try {
    const out = execFileSync(olmpeer, [STORE, ...OURS, ...args], {
      input: input ? JSON.stringify(input) : "",
      stdio: ["pipe", "pipe", expectFailure ? "pipe" : "inherit"],
    });
    const text = out.toString().trim();
    return text ? JSON.parse(text) : null;
  } catch (e) {
    if (expectFailure) return { error: e.stderr.toString().trim() };
    throw e;
  }
}
function check(cond, what) {
  console.log(`${cond ? "ok" : "FAIL"}: ${what}`);
  if (!cond) failed++;
}

const rust = await OlmMachine.initialize(new UserId("@rust:hs"), new DeviceId("RUST"));
const ours = peer(["upload"]);
let rustUpload;

async function serve() {
  for (const req of await rust.outgoingRequests()) {
    if (req.type === RequestType.KeysUpload) {
      rustUpload = JSON.parse(req.body);
      await rust.markRequestAsSent(req.id, req.type,
        JSON.stringify({ one_time_key_counts: { signed_curve25519: 50 } }));
    } else if (req.type === RequestType.KeysQuery) {
      const deviceKeys = { "@ours:hs": { OURDEV: ours.device_keys } };
      if (rustUpload) deviceKeys["@rust:hs"] = { RUST: rustUpload.device_keys };
      await rust.markRequestAsSent(req.id, req.type,
        JSON.stringify({ device_keys: deviceKeys, failures: {} }));
    } else {
      await rust.markRequestAsSent(req.id, req.type, "{}");
    }
  }
}
async function rustReceive(content, sender = "@ours:hs") {
  const processed = await rust.receiveSyncChanges(
    JSON.stringify([{ type: "m.room.encrypted", sender, content }]),
    new DeviceLists(), new Map([["signed_curve25519", 49]]), new Set());
  return processed.map((p) => ({ kind: p.type, event: JSON.parse(p.rawEvent) }));
}

try {
  // Device keys both ways.
  await serve();
  check(rustUpload?.device_keys, "matrix-sdk-crypto uploaded its device keys");
  await rust.updateTrackedUsers([new UserId("@ours:hs")]);
  await serve();
  const ourDevice = await rust.getDevice(new UserId("@ours:hs"), new DeviceId("OURDEV"));
  check(ourDevice?.curve25519Key.toBase64() === ours.device_keys.keys["curve25519:OURDEV"],
    "it accepts our signed device keys");
  peer(["query"], { device_keys: { "@rust:hs": { RUST: rustUpload.device_keys } } });

  // Olm, theirs -> ours: a media key as js-sdk 43 sends it.
  const claim = await rust.getMissingSessions([new UserId("@ours:hs")]);
  const otkId = Object.keys(ours.one_time_keys)[0];
  await rust.markRequestAsSent(claim.id, RequestType.KeysClaim, JSON.stringify({
    one_time_keys: { "@ours:hs": { OURDEV: { [otkId]: ours.one_time_keys[otkId] } } }, failures: {} }));
  const theirKey = {
    keys: { index: 7, key: Buffer.from("fedcba9876543210").toString("base64") },
    room_id: ROOM, member: { claimed_device_id: "RUST", id: "rust-member" },
    session: { call_id: "", application: "m.call", scope: "m.room" }, sent_ts: Date.now(),
  };
  const device = await rust.getDevice(new UserId("@ours:hs"), new DeviceId("OURDEV"));
  const theirEnc = JSON.parse(await device.encryptToDeviceEvent("io.element.call.encryption_keys", theirKey));
  const forged = peer(["decrypt", "@mallory:hs", ROOM], theirEnc, true);
  check(forged.error, "we refuse it when the server names another sender");
  const tampered = structuredClone(theirEnc);
  const slot = Object.values(tampered.ciphertext)[0];
  slot.body = slot.body.slice(0, 60) + (slot.body[60] === "A" ? "B" : "A") + slot.body.slice(61);
  check(peer(["decrypt", "@rust:hs", ROOM], tampered, true).error, "we refuse a tampered Olm message");
  const got = peer(["decrypt", "@rust:hs", ROOM], theirEnc);
  check(got.type === "io.element.call.encryption_keys" && got.delivered_identity === "@rust:hs:RUST" &&
    got.delivered_index === 7 && got.delivered_key_len === 16,
    "we decrypt its Olm media key and bind it to its member");
  check(peer(["decrypt", "@rust:hs", ROOM], theirEnc, true).error, "we refuse the same message replayed");

  // Olm, ours -> theirs.
  const rustOtk = Object.keys(rustUpload.one_time_keys)[0];
  peer(["claim"], { one_time_keys: { "@rust:hs": { RUST: { [rustOtk]: rustUpload.one_time_keys[rustOtk] } } } });
  const ourKey = peer(["media-key", ROOM]);
  let r = await rustReceive(peer(["encrypt", "@rust:hs", "RUST", "io.element.call.encryption_keys"], ourKey));
  check(r.length === 1 && r[0].kind === ProcessedToDeviceEventType.Decrypted &&
    r[0].event.type === "io.element.call.encryption_keys" && r[0].event.content.keys.key === ourKey.keys.key,
    "it decrypts our Olm media key (pre-key message)");
  r = await rustReceive(peer(["encrypt", "@rust:hs", "RUST", "io.element.call.encryption_keys"], ourKey));
  check(r.length === 1 && r[0].kind === ProcessedToDeviceEventType.Decrypted, "it decrypts our next Olm message");

  // Megolm, ours -> theirs.
  r = await rustReceive(peer(["room-key", ROOM, "@rust:hs", "RUST"]));
  check(r.length === 1 && r[0].kind === ProcessedToDeviceEventType.Decrypted && r[0].event.type === "m.room_key",
    "it accepts our m.room_key");
  const ourEvent = peer(["megolm-encrypt", ROOM, "org.matrix.msc4143.rtc.member"], { slot_id: "m.call#ROOM", from: "ours" });
  const dec = await rust.decryptRoomEvent(JSON.stringify({
    type: "m.room.encrypted", event_id: "$ours1", sender: "@ours:hs", origin_server_ts: 1, room_id: ROOM,
    content: ourEvent }), new RoomId(ROOM), new DecryptionSettings(TrustRequirement.Untrusted));
  const plain = JSON.parse(dec.event);
  check(plain.type === "org.matrix.msc4143.rtc.member" && plain.content.from === "ours",
    "it decrypts our Megolm room event");

  // Megolm, theirs -> ours.
  const shares = await rust.shareRoomKey(new RoomId(ROOM), [new UserId("@ours:hs")], new EncryptionSettings());
  let shared = 0;
  for (const req of shares) {
    const content = JSON.parse(req.body).messages?.["@ours:hs"]?.OURDEV;
    if (content) {
      check(peer(["decrypt", "@rust:hs", ROOM], content).type === "m.room_key", "we accept its m.room_key");
      shared++;
    }
    await rust.markRequestAsSent(req.id, RequestType.ToDevice, "{}");
  }
  check(shared === 1, "it shared one room key with us");
  const theirEvent = JSON.parse(await rust.encryptRoomEvent(new RoomId(ROOM), "org.matrix.msc4143.rtc.member",
    JSON.stringify({ slot_id: "m.call#ROOM", from: "rust" })));
  const mine = peer(["megolm-decrypt", ROOM, "@rust:hs", "$rust1", "2"], theirEvent);
  check(mine.type === "org.matrix.msc4143.rtc.member" && mine.content.from === "rust", "we decrypt its Megolm room event");
  check(peer(["megolm-decrypt", ROOM, "@rust:hs", "$other", "3"], theirEvent, true).error,
    "we refuse its Megolm event replayed under another event id");
  check(peer(["megolm-decrypt", ROOM, "@mallory:hs", "$rust1", "2"], theirEvent, true).error,
    "we refuse its Megolm session used by another sender");
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(failed ? `${failed} check(s) FAILED` : "all interop checks passed");
process.exit(failed ? 1 : 0);
