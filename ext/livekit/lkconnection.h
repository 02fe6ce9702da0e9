/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */
#ifndef __LK_CONNECTION_H__
#define __LK_CONNECTION_H__

#include <gst/gst.h>
#include "lkproto.h"

G_BEGIN_DECLS

/**
 * LkConnectionState:
 * @LK_CONNECTION_STATE_DISCONNECTED: not connected
 * @LK_CONNECTION_STATE_CONNECTING: opening the signalling WebSocket
 * @LK_CONNECTION_STATE_CONNECTED: joined the room
 * @LK_CONNECTION_STATE_RECONNECTING: waiting to rejoin after a failure
 * @LK_CONNECTION_STATE_FAILED: gave up (bad token, DTLS mismatch, ...)
 */
typedef enum
{
  LK_CONNECTION_STATE_DISCONNECTED,
  LK_CONNECTION_STATE_CONNECTING,
  LK_CONNECTION_STATE_CONNECTED,
  LK_CONNECTION_STATE_RECONNECTING,
  LK_CONNECTION_STATE_FAILED
} LkConnectionState;

GType lk_connection_state_get_type (void);
#define LK_TYPE_CONNECTION_STATE (lk_connection_state_get_type ())

#define LK_TYPE_CONNECTION (lk_connection_get_type ())
G_DECLARE_FINAL_TYPE (LkConnection, lk_connection, LK, CONNECTION, GstBin)

/**
 * LkConnection:
 *
 * A participant in one LiveKit room on one SFU: a bin holding a publisher
 * and a subscriber webrtcbin, driven by LiveKit's signalling (WebSocket
 * /rtc, binary protobuf, protocol version 3) on a thread of its own. Several
 * connections, to the same or different SFUs, live side by side in one
 * process (one per SFU a MatrixRTC member publishes on).
 *
 * Data path (all in GStreamer, no copies through the application):
 * - local tracks enter through the "sink_%u" pads lk_connection_add_track()
 *   returns; they take RTP (e.g. from rtpvp8pay pt=96, rtpopuspay pt=111);
 * - remote tracks leave through "src_%u" pads, announced by
 *   #LkConnection::track-added with the publisher's identity, track sid and
 *   source; they carry RTP (e.g. for rtpvp8depay ! vp8dec). Link them in the
 *   signal handler: the first packets (the key frame) are held until then.
 *   Only tracks whose peer presented the DTLS certificate named in the SDP
 *   flow (webrtcbin 1.22 does not check it).
 *
 * Pads are stable: on a failure (WebSocket closed, ping timeout, ICE or DTLS
 * failure, server leave) the connection rejoins with back-off, replaces both
 * webrtcbins, republishes the local tracks and re-targets the remote pads
 * (keyed by identity, source, kind and an ordinal for a second track of
 * the same source and kind), so the application never relinks.
 * A remote pad goes away ("track-removed") only when its track has been
 * gone for "track-grace-ms".
 *
 * Publishing: a track the server refuses (RequestResponse NOT_ALLOWED,
 * LIMIT_EXCEEDED, ..., or no TrackPublished within 10 s) is reported by
 * #LkConnection::track-refused and a warning message; its buffers are
 * dropped and the other tracks are published without it. A server-side
 * (admin) mute of one of our tracks is reported by
 * #LkConnection::local-track-muted. "fingerprints-verified" counts the
 * remote DTLS certificates checked and accepted.
 *
 * Bounds against a hostile SFU: at most 512 participants (32 tracks each),
 * 256 remote pads and 128 queued remote ICE candidates per transport (the
 * rest is dropped and counted in "dropped-messages"); a subscriber offer
 * beyond 128 m-lines makes the connection rejoin; a remote pad whose track
 * stays unknown for 10 s has its data dropped.
 *
 * Token: set "url" and "token" (from a token service, see
 * lk_token_request_async()), or "url", "api-key", "api-secret",
 * "identity" and "room" to mint one locally. A refresh token the server
 * sends replaces it for rejoins; it is dropped on disconnect, when "url",
 * "room", "identity", "api-key" or "api-secret" change, and when the server
 * refuses it (the rejoin then uses the configured or minted token).
 * Errors that a rejoin cannot cure (refused token, DTLS certificate
 * mismatch) post an error message and set "state" to
 * %LK_CONNECTION_STATE_FAILED.
 *
 * Typical use:
 * |[<!-- language="C" -->
 *   LkConnection *conn = lk_connection_new ("sfu-a");
 *   g_object_set (conn, "url", url, "token", jwt, NULL);
 *   gst_bin_add (GST_BIN (pipeline), GST_ELEMENT (conn));
 *   pad = lk_connection_add_track (conn, "camera", "video",
 *       LKPROTO__TRACK_SOURCE__CAMERA, vp8_rtp_caps, 1280, 720, FALSE);
 *   gst_pad_link (payloader_src, pad);
 *   g_signal_connect (conn, "track-added", G_CALLBACK (on_track), app);
 *   gst_element_set_state (pipeline, GST_STATE_PLAYING);
 *   lk_connection_connect (conn);
 * ]|
 */
LkConnection *lk_connection_new (const gchar *name);

/* Adds a local track and returns its sink pad (owned by the bin). @kind is
 * "audio" or "video"; @rtp_caps are the RTP caps the pad will receive
 * (application/x-rtp with media, encoding-name, clock-rate, payload).
 * @encrypted flags the track as end-to-end encrypted (GCM): the frames
 * must already be encrypted (matrixrtcframeenc). */
GstPad *lk_connection_add_track (LkConnection *self, const gchar *name,
    const gchar *kind, Lkproto__TrackSource source, const GstCaps *rtp_caps,
    guint width, guint height, gboolean encrypted);

/* Stops publishing the track of @pad (from lk_connection_add_track()); the
 * server unpublishes it. From the call on, the pad drops whatever upstream
 * pushes into it (upstream never sees "not-linked"); it is removed from the
 * bin as soon as it is unlinked (at once when it is not linked). Changed
 * from the first version, which removed a still-linked pad at once and so
 * stopped a streaming upstream: unlink the pad (or remove the upstream
 * elements) to see it go. The connection never waits for a streaming
 * thread still inside the pad (held downstream, e.g. in PAUSED): such a pad
 * is deactivated and removed from a GStreamer pool thread once that thread
 * has left, so stopping the pipeline right after this call cannot hang. */
void lk_connection_remove_track (LkConnection *self, GstPad *pad);

/* Marks the track of @pad as muted or not for the other participants (the
 * media itself is up to the application, e.g. send silence or nothing);
 * kept across rejoins. */
void lk_connection_set_track_muted (
    LkConnection *self, GstPad *pad, gboolean muted);

/* Joins the room (asynchronous; watch the "state" property). */
void lk_connection_connect (LkConnection *self);

/* Leaves the room and tears the session down (synchronous). */
void lk_connection_disconnect (LkConnection *self);

LkConnectionState lk_connection_get_state (LkConnection *self);

G_END_DECLS

#endif /* __LK_CONNECTION_H__ */
