// gst-matrixrtc
// Copyright (C) 2026 The gst-matrixrtc authors
//
// This library is free software; you can redistribute it and/or
// modify it under the terms of the GNU Library General Public
// License as published by the Free Software Foundation; either
// version 2.1 of the License, or (at your option) any later version.
//
// An independent LiveKit peer (LiveKit's native Node SDK, libwebrtc) for
// the interop test: it publishes a camera track (left half red, right half
// blue, VP8) and a microphone track (440 Hz sine, Opus with RED as the SDK
// defaults), subscribes to everything, and reports what it received: the
// decoded frames that show videotestsrc's SMPTE colour bars, and the audio
// frames. Environment:
//   LK_URL, LK_ROOM, LK_IDENTITY, LK_API_KEY, LK_API_SECRET (or LK_TOKEN),
//   LK_DURATION (seconds, default 15), LK_WANT_FRAMES (stop early once this
//   many good frames and 50 audio frames came in; default 30).
// Output: progress lines, then one line `RESULT {json}`.

import crypto from 'node:crypto';
import {
  AudioFrame,
  AudioSource,
  AudioStream,
  LocalAudioTrack,
  LocalVideoTrack,
  Room,
  RoomEvent,
  TrackKind,
  TrackPublishOptions,
  TrackSource,
  VideoBufferType,
  VideoCodec,
  VideoFrame,
  VideoSource,
  VideoStream,
  dispose,
} from '@livekit/rtc-node';

const env = process.env;
const WIDTH = 320;
const HEIGHT = 240;
const FPS = 15;

function mintToken(key, secret, identity, room) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({
    iss: key,
    sub: identity,
    nbf: now - 10,
    exp: now + 3600,
    video: { room, roomJoin: true, roomCreate: true, canPublish: true, canSubscribe: true },
  })}`;
  const sig = crypto.createHmac('sha256', secret).update(input).digest('base64url');
  return `${input}.${sig}`;
}

// videotestsrc pattern=smpte, top two thirds
const BARS = [
  [255, 255, 255], [255, 255, 0], [0, 255, 255], [0, 255, 0],
  [255, 0, 255], [255, 0, 0], [0, 0, 255],
];

function showsBars(frame) {
  const rgba = frame.convert(VideoBufferType.RGBA);
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

const identity = env.LK_IDENTITY || 'node-peer';
const token =
  env.LK_TOKEN || mintToken(env.LK_API_KEY, env.LK_API_SECRET, identity, env.LK_ROOM);
const duration = Number(env.LK_DURATION || 15) * 1000;
const wantFrames = Number(env.LK_WANT_FRAMES || 30);

const stats = { video_frames: 0, bars_frames: 0, audio_frames: 0, tracks: [], published: [] };
const room = new Room();
let running = true;

room.on(RoomEvent.TrackSubscribed, (track, publication, participant) => {
  stats.tracks.push({
    identity: participant.identity,
    sid: publication.sid,
    kind: track.kind === TrackKind.KIND_VIDEO ? 'video' : 'audio',
    source: publication.source,
  });
  if (track.kind === TrackKind.KIND_VIDEO) {
    (async () => {
      for await (const ev of new VideoStream(track)) {
        stats.video_frames++;
        if (showsBars(ev.frame)) stats.bars_frames++;
        if (!running) break;
      }
    })().catch((e) => console.error('video stream:', e));
  } else {
    (async () => {
      for await (const frame of new AudioStream(track, 48000, 1)) {
        if (frame.samplesPerChannel > 0) stats.audio_frames++;
        if (!running) break;
      }
    })().catch((e) => console.error('audio stream:', e));
  }
});

await room.connect(env.LK_URL, token, { autoSubscribe: true, dynacast: false });
console.log(`connected as ${identity}`);

const videoSource = new VideoSource(WIDTH, HEIGHT);
const videoTrack = LocalVideoTrack.createVideoTrack('camera', videoSource);
const vpub = await room.localParticipant.publishTrack(
  videoTrack,
  new TrackPublishOptions({
    source: TrackSource.SOURCE_CAMERA,
    videoCodec: VideoCodec.VP8,
    simulcast: false,
  }),
);
const audioSource = new AudioSource(48000, 1);
const audioTrack = LocalAudioTrack.createAudioTrack('microphone', audioSource);
const apub = await room.localParticipant.publishTrack(
  audioTrack,
  new TrackPublishOptions({ source: TrackSource.SOURCE_MICROPHONE }),
);
stats.published = [vpub.sid, apub.sid];

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
let phase = 0;
const videoTimer = setInterval(() => {
  videoSource.captureFrame(
    new VideoFrame(rgba, WIDTH, HEIGHT, VideoBufferType.RGBA),
    BigInt((Date.now() - start) * 1000),
  );
}, 1000 / FPS);

while (Date.now() - start < duration) {
  const samples = new Int16Array(480);
  for (let i = 0; i < samples.length; i++, phase++) {
    samples[i] = Math.round(8000 * Math.sin((2 * Math.PI * 440 * phase) / 48000));
  }
  await audioSource.captureFrame(new AudioFrame(samples, 48000, 1, 480));
  if (stats.bars_frames >= wantFrames && stats.audio_frames >= 50 && Date.now() - start > 3000) {
    break;
  }
}
running = false;
clearInterval(videoTimer);
console.log(`RESULT ${JSON.stringify(stats)}`);
await room.disconnect();
await dispose();
process.exit(0);
