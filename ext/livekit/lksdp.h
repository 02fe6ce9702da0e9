/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */
#ifndef __LK_SDP_H__
#define __LK_SDP_H__

#include <gst/sdp/sdp.h>

G_BEGIN_DECLS

/* I/O-free SDP helpers for the LiveKit transport. */

/* One m-section as LiveKit uses it. */
typedef struct
{
  guint mline;
  gchar *kind;      /* "audio", "video", "application" */
  gchar *mid;       /* a=mid, or NULL */
  gchar *stream_id; /* msid stream id ("PA_x|TR_y"), or NULL */
  gchar *track_id;  /* msid track id (appdata), or NULL */
} LkSdpMedia;

void lk_sdp_media_free (LkSdpMedia *media);

/* The m-sections of @sdp in order, each with its mid and msid (from
 * a=msid, or else from a=ssrc:<n> msid:<stream> <track>). */
GPtrArray *lk_sdp_list_media (const GstSDPMessage *sdp);

/* Splits LiveKit's packed stream id "PA_xxx|TR_yyy"; a stream id without
 * '|' is a participant sid only (*track_sid set to NULL). */
gboolean lk_sdp_split_stream_id (
    const gchar *stream_id, gchar **participant_sid, gchar **track_sid);

/* mid -> LiveKit track sid ("TR_...") for each audio/video m-section of a
 * subscriber offer, from its msid ("PA_x|TR_y TR_y"). */
GHashTable *lk_sdp_track_map (const GstSDPMessage *sdp);

/* Removes audio/red from the audio m-sections of an offer, so that our
 * answer picks plain Opus (webrtcbin 1.22 answers with the first format).
 * Returns the number of payload types removed. */
guint lk_sdp_strip_audio_red (GstSDPMessage *sdp);

/* Moves the formats of m-section @mline whose rtpmap names @encoding_name
 * ("H264", "VP9", ...; case-insensitive) to the front of its format list,
 * H.264 with packetization-mode=1 first, the others keeping their order.
 * LiveKit's subscriber offer lists every codec it knows, VP8 first, for
 * each track, whatever the track is published in; webrtcbin 1.22 answers
 * with the first format only, and the SFU then cannot forward an H.264
 * (or VP9) track ("codec is not supported by remote"). For H.264,
 * @h264_profile_level_id (e.g. "640032", or NULL when unknown) puts the
 * packetization-mode=1 formats whose profile-level-id names the same
 * profile (profile_idc and constraint flags; the level is ignored) before
 * the other ones. Returns FALSE (and leaves the section alone) when it
 * does not offer the codec. */
gboolean lk_sdp_prefer_codec (GstSDPMessage *sdp, guint mline,
    const gchar *encoding_name, const gchar *h264_profile_level_id);

/* The codec to answer for a remote video track published in
 * @mime_types (the track's mime type, then those of its codecs, e.g.
 * "video/AV1", "video/VP8"; NULL-terminated, may be NULL): the encoding
 * name ("VP8", "VP9" or "H264", the ones our receive side depacketizes)
 * of the first one of those it names, or NULL when it names none (the
 * offer is then best left alone: the SFU forwards a backup codec it
 * matches, if any). */
const gchar *lk_sdp_pick_receive_codec (const gchar *const *mime_types);

/* The a=fingerprint of @mline (or of the session), e.g. hash "sha-256"
 * and value "AB:CD:...". FALSE when there is none. */
gboolean lk_sdp_get_fingerprint (const GstSDPMessage *sdp, guint mline,
    gchar **hash_func, gchar **fingerprint);

/* The fingerprint of a PEM certificate with @hash_func ("sha-256", "sha-1",
 * "sha-384", "sha-512"), as upper-case hex pairs joined by ':'. */
gchar *lk_sdp_certificate_fingerprint (
    const gchar *pem, const gchar *hash_func, GError **error);

/* Compares two fingerprints, ignoring case. */
gboolean lk_sdp_fingerprint_equal (const gchar *a, const gchar *b);

/* One a=fingerprint line: hash function (lower case) and value. */
typedef struct
{
  gchar *hash_func;
  gchar *value;
} LkSdpFingerprint;

void lk_sdp_fingerprint_free (LkSdpFingerprint *fp);

/* Every a=fingerprint of @mline, or else of the session (RFC 8122 allows
 * several, with different hash functions); an array of LkSdpFingerprint,
 * empty when there is none. */
GPtrArray *lk_sdp_get_fingerprints (const GstSDPMessage *sdp, guint mline);

/* Whether @hash_func is strong enough to vouch for a DTLS certificate:
 * sha-256, sha-384 or sha-512 (not sha-1, not md5). */
gboolean lk_sdp_fingerprint_hash_accepted (const gchar *hash_func);

/* Whether the PEM certificate @pem matches any of @fingerprints (from
 * lk_sdp_get_fingerprints()) with an accepted hash function. FALSE and
 * @error when none matches or none has an accepted hash. */
gboolean lk_sdp_certificate_matches (
    const gchar *pem, GPtrArray *fingerprints, GError **error);

/* LiveKit's TrickleRequest.candidateInit is a JSON RTCIceCandidateInit. */
gchar *lk_sdp_candidate_init_to_json (
    const gchar *candidate, const gchar *sdp_mid, guint sdp_mline_index);
gboolean lk_sdp_candidate_init_from_json (const gchar *json, gchar **candidate,
    gchar **sdp_mid, gint *sdp_mline_index, GError **error);

G_END_DECLS

#endif /* __LK_SDP_H__ */
