/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Unit tests of the LiveKit transport's I/O-free parts: signalling
 * protobuf, SDP/msid/track mapping, DTLS fingerprints, ICE candidate JSON,
 * token minting and token-service bodies and replies. */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/check/gstcheck.h>
#include <string.h>

#include "lkproto.h"
#include "lksdp.h"
#include "lktoken.h"

/* ---- protobuf ---- */

/* AddTrackRequest, hand-encoded from the protobuf wire format. */
GST_START_TEST (test_proto_add_track_known_answer)
{
  static const guint8 expected[] = {
    0x22, 0x24,           /* SignalRequest.add_track (4), 36 bytes */
    0x0a, 0x02, 'v', '0', /* cid */
    0x12, 0x06, 'c', 'a', 'm', 'e', 'r', 'a', /* name */
    0x18, 0x01,                               /* type VIDEO */
    0x20, 0xc0, 0x02,                         /* width 320 */
    0x28, 0xf0, 0x01,                         /* height 240 */
    0x40, 0x01,                               /* source CAMERA */
    0x4a, 0x08, 0x08, 0x02, 0x10, 0xc0, 0x02, 0x18, 0xf0, 0x01, /* layer */
    0x68, 0x01, /* disable_red */
    0x70, 0x01, /* encryption GCM */
  };
  Lkproto__SignalRequest req = LKPROTO__SIGNAL_REQUEST__INIT;
  Lkproto__AddTrackRequest add = LKPROTO__ADD_TRACK_REQUEST__INIT;
  Lkproto__VideoLayer layer = LKPROTO__VIDEO_LAYER__INIT;
  Lkproto__VideoLayer *layers[] = { &layer };
  GBytes *bytes;
  gsize size;
  const guint8 *data;

  add.cid = (gchar *)"v0";
  add.name = (gchar *)"camera";
  add.type = LKPROTO__TRACK_TYPE__VIDEO;
  add.width = 320;
  add.height = 240;
  add.source = LKPROTO__TRACK_SOURCE__CAMERA;
  layer.quality = LKPROTO__VIDEO_QUALITY__HIGH;
  layer.width = 320;
  layer.height = 240;
  add.n_layers = 1;
  add.layers = layers;
  add.disable_red = TRUE;
  add.encryption = LKPROTO__ENCRYPTION_TYPE__GCM;
  req.message_case = LKPROTO__SIGNAL_REQUEST__MESSAGE_ADD_TRACK;
  req.add_track = &add;

  bytes = lk_proto_pack_request (&req);
  data = g_bytes_get_data (bytes, &size);
  fail_unless_equals_int (size, sizeof (expected));
  fail_unless (memcmp (data, expected, size) == 0);
  g_bytes_unref (bytes);
}

GST_END_TEST;

/* A JoinResponse as the server sends it (with fields we do not declare,
 * which must be skipped). */
GST_START_TEST (test_proto_join_response)
{
  Lkproto__SignalResponse resp = LKPROTO__SIGNAL_RESPONSE__INIT;
  Lkproto__JoinResponse join = LKPROTO__JOIN_RESPONSE__INIT;
  Lkproto__ParticipantInfo me = LKPROTO__PARTICIPANT_INFO__INIT;
  Lkproto__ParticipantInfo other = LKPROTO__PARTICIPANT_INFO__INIT;
  Lkproto__ParticipantInfo *others[] = { &other };
  Lkproto__TrackInfo track = LKPROTO__TRACK_INFO__INIT;
  Lkproto__TrackInfo *tracks[] = { &track };
  Lkproto__ICEServer ice = LKPROTO__ICESERVER__INIT;
  Lkproto__ICEServer *ices[] = { &ice };
  gchar *urls[] = { (gchar *)"stun:stun.example.org:3478" };
  guint8 *buf, *ext;
  gsize size;
  Lkproto__SignalResponse *out;
  GError *error = NULL;
  /* an unknown field 99 (varint) appended to the join message */
  static const guint8 unknown[] = { 0x98, 0x06, 0x07 };

  me.sid = (gchar *)"PA_me";
  me.identity = (gchar *)"@alice:example.org:DEV";
  other.sid = (gchar *)"PA_other";
  other.identity = (gchar *)"bob";
  other.state = LKPROTO__PARTICIPANT_STATE__ACTIVE;
  other.version = 3;
  track.sid = (gchar *)"TR_VCabc";
  track.type = LKPROTO__TRACK_TYPE__VIDEO;
  track.source = LKPROTO__TRACK_SOURCE__SCREEN_SHARE;
  track.encryption = LKPROTO__ENCRYPTION_TYPE__GCM;
  other.n_tracks = 1;
  other.tracks = tracks;
  ice.n_urls = 1;
  ice.urls = urls;
  join.participant = &me;
  join.n_other_participants = 1;
  join.other_participants = others;
  join.n_ice_servers = 1;
  join.ice_servers = ices;
  join.subscriber_primary = TRUE;
  join.ping_interval = 5;
  join.ping_timeout = 15;
  resp.message_case = LKPROTO__SIGNAL_RESPONSE__MESSAGE_JOIN;
  resp.join = &join;

  size = lkproto__signal_response__get_packed_size (&resp);
  buf = g_malloc (size);
  lkproto__signal_response__pack (&resp, buf);
  /* rewrite: outer tag + new length, join body + unknown field */
  fail_unless (buf[0] == 0x0a && buf[1] < 0x7f - sizeof (unknown));
  ext = g_malloc (size + sizeof (unknown));
  memcpy (ext, buf, size);
  memcpy (ext + size, unknown, sizeof (unknown));
  ext[1] = buf[1] + sizeof (unknown);

  out = lk_proto_unpack_response (ext, size + sizeof (unknown), &error);
  fail_unless (out != NULL, "%s", error ? error->message : "");
  fail_unless_equals_string (lk_proto_response_name (out), "join");
  fail_unless_equals_string (out->join->participant->sid, "PA_me");
  fail_unless_equals_int (out->join->n_other_participants, 1);
  fail_unless_equals_string (out->join->other_participants[0]->identity, "bob");
  fail_unless_equals_int (out->join->other_participants[0]->version, 3);
  fail_unless_equals_int (out->join->other_participants[0]->tracks[0]->source,
      LKPROTO__TRACK_SOURCE__SCREEN_SHARE);
  fail_unless_equals_int (
      out->join->other_participants[0]->tracks[0]->encryption,
      LKPROTO__ENCRYPTION_TYPE__GCM);
  fail_unless_equals_string (
      out->join->ice_servers[0]->urls[0], "stun:stun.example.org:3478");
  fail_unless (out->join->subscriber_primary);
  fail_unless_equals_int (out->join->ping_timeout, 15);
  lk_proto_response_free (out);
  g_free (buf);
  g_free (ext);
}

GST_END_TEST;

GST_START_TEST (test_proto_offer_map_and_pong)
{
  Lkproto__SignalResponse resp = LKPROTO__SIGNAL_RESPONSE__INIT;
  Lkproto__SessionDescription sd = LKPROTO__SESSION_DESCRIPTION__INIT;
  Lkproto__StringEntry e1 = LKPROTO__STRING_ENTRY__INIT;
  Lkproto__StringEntry e2 = LKPROTO__STRING_ENTRY__INIT;
  Lkproto__StringEntry *entries[] = { &e1, &e2 };
  Lkproto__SignalResponse *out;
  guint8 buf[256];
  gsize size;
  /* SignalResponse.pong (18) = 1712345678901 */
  static const guint8 pong[]
      = { 0x90, 0x01, 0xb5, 0x88, 0x86, 0xfe, 0xea, 0x31 };

  sd.type = (gchar *)"offer";
  sd.sdp = (gchar *)"v=0\r\n";
  sd.id = 7;
  e1.key = (gchar *)"0";
  e1.value = (gchar *)"TR_AMx";
  e2.key = (gchar *)"1";
  e2.value = (gchar *)"TR_VCy";
  sd.n_mid_to_track_id = 2;
  sd.mid_to_track_id = entries;
  resp.message_case = LKPROTO__SIGNAL_RESPONSE__MESSAGE_OFFER;
  resp.offer = &sd;
  size = lkproto__signal_response__pack (&resp, buf);
  out = lk_proto_unpack_response (buf, size, NULL);
  fail_unless (out != NULL);
  fail_unless_equals_int (out->offer->id, 7);
  fail_unless_equals_string (
      lk_proto_entries_lookup (
          out->offer->mid_to_track_id, out->offer->n_mid_to_track_id, "1"),
      "TR_VCy");
  fail_unless (lk_proto_entries_lookup (out->offer->mid_to_track_id,
                   out->offer->n_mid_to_track_id, "2")
               == NULL);
  lk_proto_response_free (out);

  out = lk_proto_unpack_response (pong, sizeof (pong), NULL);
  fail_unless (out != NULL);
  fail_unless_equals_string (lk_proto_response_name (out), "pong");
  fail_unless (out->pong == G_GINT64_CONSTANT (1712345678901));
  lk_proto_response_free (out);
}

GST_END_TEST;

GST_START_TEST (test_proto_malformed)
{
  static const guint8 truncated[] = { 0x0a, 0x20, 0x0a, 0x05, 'P', 'A' };
  static const guint8 bad_wire_type[] = { 0x0f, 0x01 };
  GError *error = NULL;
  guint8 random_data[512];
  guint i, n;

  fail_unless (
      lk_proto_unpack_response (truncated, sizeof (truncated), &error) == NULL);
  fail_unless (g_error_matches (error, LK_ERROR, LK_ERROR_PROTOCOL));
  g_clear_error (&error);
  fail_unless (
      lk_proto_unpack_response (bad_wire_type, sizeof (bad_wire_type), &error)
      == NULL);
  g_clear_error (&error);
  /* random input never crashes */
  for (n = 0; n < 2000; n++) {
    Lkproto__SignalResponse *r;
    guint len = g_random_int_range (0, sizeof (random_data));
    for (i = 0; i < len; i++)
      random_data[i] = g_random_int_range (0, 256);
    r = lk_proto_unpack_response (random_data, len, NULL);
    lk_proto_response_free (r);
  }
}

GST_END_TEST;

GST_START_TEST (test_proto_source_names)
{
  fail_unless_equals_string (
      lk_proto_source_to_string (LKPROTO__TRACK_SOURCE__SCREEN_SHARE),
      "screen_share");
  fail_unless_equals_string (lk_proto_source_to_string (42), "unknown");
  fail_unless_equals_int (lk_proto_source_from_string ("Microphone"),
      LKPROTO__TRACK_SOURCE__MICROPHONE);
  fail_unless_equals_int (
      lk_proto_source_from_string ("nope"), LKPROTO__TRACK_SOURCE__UNKNOWN);
}

GST_END_TEST;

/* ---- SDP ---- */

/* Shaped like a LiveKit (pion) subscriber offer. */
static const gchar subscriber_offer[]
    = "v=0\r\n"
      "o=- 123 2 IN IP4 0.0.0.0\r\n"
      "s=-\r\n"
      "t=0 0\r\n"
      "a=fingerprint:sha-256 43:52:FC:E8:84:3A:34:88:A3:81:06:6F:1F:0C:43:B7:"
      "69:6D:35:AD:55:83:88:FA:6F:FE:5B:42:F3:BC:1A:C6\r\n"
      "a=group:BUNDLE 0 1 2\r\n"
      "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
      "c=IN IP4 0.0.0.0\r\n"
      "a=mid:0\r\n"
      "a=sctp-port:5000\r\n"
      "m=audio 9 UDP/TLS/RTP/SAVPF 63 111\r\n"
      "c=IN IP4 0.0.0.0\r\n"
      "a=mid:1\r\n"
      "a=rtpmap:63 red/48000/2\r\n"
      "a=fmtp:63 111/111\r\n"
      "a=rtpmap:111 opus/48000/2\r\n"
      "a=fmtp:111 minptime=10;useinbandfec=1\r\n"
      "a=rtcp-fb:111 nack\r\n"
      "a=ssrc:1111 cname:PA_pub|TR_AMaudio\r\n"
      "a=ssrc:1111 msid:PA_pub|TR_AMaudio TR_AMaudio\r\n"
      "a=sendonly\r\n"
      "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n"
      "c=IN IP4 0.0.0.0\r\n"
      "a=mid:2\r\n"
      "a=fingerprint:sha-256 AA:BB\r\n"
      "a=msid:PA_pub|TR_VCvideo TR_VCvideo\r\n"
      "a=rtpmap:96 VP8/90000\r\n"
      "a=rtpmap:97 rtx/90000\r\n"
      "a=fmtp:97 apt=96\r\n"
      "a=sendonly\r\n";

static GstSDPMessage *
parse_sdp (const gchar *text)
{
  GstSDPMessage *sdp = NULL;

  fail_unless_equals_int (
      gst_sdp_message_new_from_text (text, &sdp), GST_SDP_OK);
  return sdp;
}

GST_START_TEST (test_sdp_media_and_track_map)
{
  GstSDPMessage *sdp = parse_sdp (subscriber_offer);
  GPtrArray *media = lk_sdp_list_media (sdp);
  GHashTable *map;
  LkSdpMedia *m;

  fail_unless_equals_int (media->len, 3);
  m = g_ptr_array_index (media, 0);
  fail_unless_equals_string (m->kind, "application");
  fail_unless (m->stream_id == NULL);
  m = g_ptr_array_index (media, 1);
  fail_unless_equals_string (m->mid, "1");
  fail_unless_equals_string (m->stream_id, "PA_pub|TR_AMaudio");
  fail_unless_equals_string (m->track_id, "TR_AMaudio");
  m = g_ptr_array_index (media, 2);
  fail_unless_equals_string (m->kind, "video");
  fail_unless_equals_string (m->track_id, "TR_VCvideo");
  g_ptr_array_unref (media);

  map = lk_sdp_track_map (sdp);
  fail_unless_equals_int (g_hash_table_size (map), 2);
  fail_unless_equals_string (g_hash_table_lookup (map, "1"), "TR_AMaudio");
  fail_unless_equals_string (g_hash_table_lookup (map, "2"), "TR_VCvideo");
  g_hash_table_unref (map);
  gst_sdp_message_free (sdp);
}

GST_END_TEST;

GST_START_TEST (test_sdp_split_stream_id)
{
  gchar *p = NULL, *t = NULL;

  fail_unless (lk_sdp_split_stream_id ("PA_a|TR_b", &p, &t));
  fail_unless_equals_string (p, "PA_a");
  fail_unless_equals_string (t, "TR_b");
  g_free (p);
  g_free (t);
  fail_unless (lk_sdp_split_stream_id ("PA_only", &p, &t));
  fail_unless_equals_string (p, "PA_only");
  fail_unless (t == NULL);
  g_free (p);
  fail_unless (!lk_sdp_split_stream_id ("|TR_b", &p, &t));
  fail_unless (!lk_sdp_split_stream_id (NULL, &p, &t));
  fail_unless (!lk_sdp_split_stream_id ("", &p, &t));
}

GST_END_TEST;

GST_START_TEST (test_sdp_strip_red)
{
  GstSDPMessage *sdp = parse_sdp (subscriber_offer);
  const GstSDPMedia *audio;
  guint i;

  fail_unless_equals_int (lk_sdp_strip_audio_red (sdp), 1);
  audio = gst_sdp_message_get_media (sdp, 1);
  fail_unless_equals_int (gst_sdp_media_formats_len (audio), 1);
  fail_unless_equals_string (gst_sdp_media_get_format (audio, 0), "111");
  for (i = 0; i < gst_sdp_media_attributes_len (audio); i++) {
    const GstSDPAttribute *a = gst_sdp_media_get_attribute (audio, i);
    fail_if (a->value && g_str_has_prefix (a->value, "63 "), "left %s:%s",
        a->key, a->value);
  }
  /* the ssrc and video lines are untouched */
  fail_unless_equals_string (gst_sdp_media_get_attribute_val (audio, "ssrc"),
      "1111 cname:PA_pub|TR_AMaudio");
  fail_unless_equals_int (
      gst_sdp_media_formats_len (gst_sdp_message_get_media (sdp, 2)), 2);
  /* idempotent */
  fail_unless_equals_int (lk_sdp_strip_audio_red (sdp), 0);
  gst_sdp_message_free (sdp);
}

GST_END_TEST;

/* A video m-section as livekit-server 1.13.5 offers it to a subscriber
 * for an H.264 track: every codec it knows, VP8 first. */
static const gchar h264_track_offer[]
    = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
      "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 125 126 108 109 35\r\n"
      "c=IN IP4 0.0.0.0\r\na=mid:1\r\n"
      "a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack pli\r\n"
      "a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n"
      "a=rtpmap:98 VP9/90000\r\na=fmtp:98 profile-id=0\r\n"
      "a=rtpmap:125 H264/90000\r\na=fmtp:125 level-asymmetry-allowed=1;"
      "packetization-mode=0;profile-level-id=42e01f\r\n"
      "a=rtpmap:126 rtx/90000\r\na=fmtp:126 apt=125\r\n"
      "a=rtpmap:108 h264/90000\r\na=fmtp:108 level-asymmetry-allowed=1;"
      "packetization-mode=1;profile-level-id=42e01f\r\n"
      "a=rtpmap:109 rtx/90000\r\na=fmtp:109 apt=108\r\n"
      "a=rtpmap:35 AV1/90000\r\n";

static gchar *
formats_of (const GstSDPMessage *sdp, guint mline)
{
  const GstSDPMedia *m = gst_sdp_message_get_media (sdp, mline);
  GString *out = g_string_new (NULL);
  guint i;

  for (i = 0; i < gst_sdp_media_formats_len (m); i++)
    g_string_append_printf (
        out, "%s%s", i ? " " : "", gst_sdp_media_get_format (m, i));
  return g_string_free (out, FALSE);
}

GST_START_TEST (test_sdp_prefer_codec)
{
  GstSDPMessage *sdp = parse_sdp (h264_track_offer);
  gchar *formats;

  /* H.264 first, packetization-mode 1 before 0, the rest in order */
  fail_unless (lk_sdp_prefer_codec (sdp, 0, "H264", NULL));
  formats = formats_of (sdp, 0);
  fail_unless_equals_string (formats, "108 125 96 97 98 126 109 35");
  g_free (formats);
  /* attributes are untouched; idempotent */
  fail_unless_equals_int (
      gst_sdp_media_attributes_len (gst_sdp_message_get_media (sdp, 0)), 16);
  fail_unless (lk_sdp_prefer_codec (sdp, 0, "h264", NULL));
  formats = formats_of (sdp, 0);
  fail_unless_equals_string (formats, "108 125 96 97 98 126 109 35");
  g_free (formats);
  fail_unless (lk_sdp_prefer_codec (sdp, 0, "AV1", NULL));
  formats = formats_of (sdp, 0);
  fail_unless_equals_string (formats, "35 108 125 96 97 98 126 109");
  g_free (formats);
  /* a codec the section does not offer, a bad m-line: left alone */
  fail_if (lk_sdp_prefer_codec (sdp, 0, "H265", NULL));
  fail_if (lk_sdp_prefer_codec (sdp, 3, "VP8", NULL));
  fail_if (lk_sdp_prefer_codec (sdp, 0, NULL, NULL));
  formats = formats_of (sdp, 0);
  fail_unless_equals_string (formats, "35 108 125 96 97 98 126 109");
  g_free (formats);
  gst_sdp_message_free (sdp);
}

GST_END_TEST;

/* An H.264 section offering several profiles, as livekit-server does:
 * constrained baseline first, High last. */
static const gchar h264_profiles_offer[]
    = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
      "m=video 9 UDP/TLS/RTP/SAVPF 96 125 108 127 112\r\n"
      "c=IN IP4 0.0.0.0\r\na=mid:1\r\n"
      "a=rtpmap:96 VP8/90000\r\n"
      "a=rtpmap:125 H264/90000\r\na=fmtp:125 level-asymmetry-allowed=1;"
      "packetization-mode=0;profile-level-id=640032\r\n"
      "a=rtpmap:108 H264/90000\r\na=fmtp:108 level-asymmetry-allowed=1;"
      "packetization-mode=1;profile-level-id=42e01f\r\n"
      "a=rtpmap:127 H264/90000\r\na=fmtp:127 level-asymmetry-allowed=1;"
      "packetization-mode=1;profile-level-id=4d001f\r\n"
      "a=rtpmap:112 H264/90000\r\na=fmtp:112 level-asymmetry-allowed=1;"
      "packetization-mode=1;profile-level-id=640032\r\n";

GST_START_TEST (test_sdp_prefer_h264_profile)
{
  GstSDPMessage *sdp = parse_sdp (h264_profiles_offer);
  gchar *formats;

  /* a High track: High with packetization-mode 1 first (any level), then
   * the other mode-1 profiles in order, then mode 0 */
  fail_unless (lk_sdp_prefer_codec (sdp, 0, "H264", "64001f"));
  formats = formats_of (sdp, 0);
  fail_unless_equals_string (formats, "112 108 127 125 96");
  g_free (formats);
  /* Main */
  fail_unless (lk_sdp_prefer_codec (sdp, 0, "H264", "4D0028"));
  formats = formats_of (sdp, 0);
  fail_unless_equals_string (formats, "127 112 108 125 96");
  g_free (formats);
  /* a profile not offered, a malformed one, none: the mode-1 formats in
   * their order */
  fail_unless (lk_sdp_prefer_codec (sdp, 0, "H264", "f40032"));
  formats = formats_of (sdp, 0);
  fail_unless_equals_string (formats, "127 112 108 125 96");
  g_free (formats);
  gst_sdp_message_free (sdp);
  sdp = parse_sdp (h264_profiles_offer);
  fail_unless (lk_sdp_prefer_codec (sdp, 0, "H264", "64"));
  formats = formats_of (sdp, 0);
  fail_unless_equals_string (formats, "108 127 112 125 96");
  g_free (formats);
  gst_sdp_message_free (sdp);
  sdp = parse_sdp (h264_profiles_offer);
  fail_unless (lk_sdp_prefer_codec (sdp, 0, "H264", NULL));
  formats = formats_of (sdp, 0);
  fail_unless_equals_string (formats, "108 127 112 125 96");
  g_free (formats);
  gst_sdp_message_free (sdp);
}

GST_END_TEST;

/* Which codec a subscriber answers for a track: the first of the track's
 * mime type and its codecs' that the receive side depacketizes. */
GST_START_TEST (test_sdp_pick_receive_codec)
{
  const gchar *vp8[] = { "video/VP8", NULL };
  const gchar *h264[] = { "video/H264", NULL };
  const gchar *vp9[] = { "video/vp9", "video/VP8", NULL };
  const gchar *av1_backup[] = { "video/AV1", "video/VP8", NULL };
  const gchar *h265_backup[] = { "video/H265", "video/H264", NULL };
  const gchar *av1[] = { "video/AV1", NULL };
  const gchar *h265[] = { "video/H265", "video/AV1", NULL };
  const gchar *bare[] = { "H264", NULL };
  const gchar *empty[] = { NULL };

  fail_unless_equals_string (lk_sdp_pick_receive_codec (vp8), "VP8");
  fail_unless_equals_string (lk_sdp_pick_receive_codec (h264), "H264");
  fail_unless_equals_string (lk_sdp_pick_receive_codec (vp9), "VP9");
  fail_unless_equals_string (lk_sdp_pick_receive_codec (av1_backup), "VP8");
  fail_unless_equals_string (lk_sdp_pick_receive_codec (h265_backup), "H264");
  fail_unless_equals_string (lk_sdp_pick_receive_codec (bare), "H264");
  fail_unless (lk_sdp_pick_receive_codec (av1) == NULL);
  fail_unless (lk_sdp_pick_receive_codec (h265) == NULL);
  fail_unless (lk_sdp_pick_receive_codec (empty) == NULL);
  fail_unless (lk_sdp_pick_receive_codec (NULL) == NULL);
}

GST_END_TEST;

static const gchar test_cert[]
    = "-----BEGIN CERTIFICATE-----\n"
      "MIIBejCCAR+gAwIBAgIUA9fCD53g11elJEA/m+OLiOBGQrkwCgYIKoZIzj0EAwIw\n"
      "EjEQMA4GA1UEAwwHbGstdGVzdDAeFw0yNjExMjUwMDMxMjdaFw0zNjExMjIwMDMx\n"
      "MjdaMBIxEDAOBgNVBAMMB2xrLXRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC\n"
      "AATtJYO9j6wuGTfES6MNVN/+ny1yLHsb2RIACcez2GA2ihjr3dWkRUyrgk8yNVu0\n"
      "DwlzzLALCua3x98cbP6eeiyEo1MwUTAdBgNVHQ4EFgQU1genWnfCNsBlnpy41w9A\n"
      "99GtimcwHwYDVR0jBBgwFoAU1genWnfCNsBlnpy41w9A99GtimcwDwYDVR0TAQH/\n"
      "BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEA88tkwAGntkD2WN1rW0WGgRK/TB8P\n"
      "RSWNkicrnYq59SsCIQCWnVBzYoXSaDtZprxKUnUc5Vy5/IOOQnEQvHd92nXsRg==\n"
      "-----END CERTIFICATE-----\n";

/* openssl x509 -fingerprint -sha256 of test_cert */
#define TEST_CERT_SHA256                                                       \
  "43:52:FC:E8:84:3A:34:88:A3:81:06:6F:1F:0C:43:B7:"                           \
  "69:6D:35:AD:55:83:88:FA:6F:FE:5B:42:F3:BC:1A:C6"

GST_START_TEST (test_sdp_fingerprint)
{
  GstSDPMessage *sdp = parse_sdp (subscriber_offer);
  gchar *hash = NULL, *fp = NULL, *cert_fp;
  GError *error = NULL;

  /* session level for m-line 0, media level wins for m-line 2 */
  fail_unless (lk_sdp_get_fingerprint (sdp, 0, &hash, &fp));
  fail_unless_equals_string (hash, "sha-256");
  cert_fp = lk_sdp_certificate_fingerprint (test_cert, hash, &error);
  fail_unless_equals_string (cert_fp, TEST_CERT_SHA256);
  fail_unless (lk_sdp_fingerprint_equal (cert_fp, fp));
  g_free (hash);
  g_free (fp);
  fail_unless (lk_sdp_get_fingerprint (sdp, 2, &hash, &fp));
  fail_unless_equals_string (fp, "AA:BB");
  fail_if (lk_sdp_fingerprint_equal (cert_fp, fp));
  fail_unless (lk_sdp_fingerprint_equal ("aa:bb", fp));
  g_free (hash);
  g_free (fp);
  g_free (cert_fp);

  fail_unless (
      lk_sdp_certificate_fingerprint ("garbage", "sha-256", &error) == NULL);
  fail_unless (g_error_matches (error, LK_ERROR, LK_ERROR_DTLS_FINGERPRINT));
  g_clear_error (&error);
  fail_unless (
      lk_sdp_certificate_fingerprint (test_cert, "md5", &error) == NULL);
  g_clear_error (&error);
  fail_unless (
      lk_sdp_certificate_fingerprint (NULL, "sha-256", &error) == NULL);
  g_clear_error (&error);
  fail_if (lk_sdp_fingerprint_equal (NULL, NULL));
  gst_sdp_message_free (sdp);
}

GST_END_TEST;

/* the same certificate's sha-1 and sha-512 fingerprints */
#define SHA1_FP "A3:59:FA:DA:59:E4:A5:ED:4C:A8:25:D1:8F:A0:E5:C4:EB:DE:50:78"
#define SHA512_FP                                                              \
  "A8:58:73:04:98:B3:65:84:A3:E0:34:27:EF:74:09:64:52:0C:6F:2D:"               \
  "C2:73:27:EC:CC:4C:39:4E:61:34:6B:2D:22:F5:19:4F:B2:9E:65:76:"               \
  "A1:0F:5A:63:FA:D7:2E:DC:26:8A:98:A6:20:6F:6D:0C:F2:00:85:00:"               \
  "69:4D:DE:37"
/* RFC 8122: several a=fingerprint lines; any one with sha-256 or stronger
 * may vouch for the certificate, sha-1 never does. */
GST_START_TEST (test_sdp_fingerprint_list)
{
  g_autofree gchar *several = g_strconcat ("v=0\r\n"
                                           "o=- 1 1 IN IP4 0.0.0.0\r\n"
                                           "s=-\r\n"
                                           "t=0 0\r\n"
                                           "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
                                           "a=fingerprint:sha-256 AA:BB\r\n"
                                           "a=fingerprint:SHA-512 ",
      SHA512_FP, "\r\n", NULL);
  g_autofree gchar *only_sha1 = g_strconcat ("v=0\r\n"
                                             "o=- 1 1 IN IP4 0.0.0.0\r\n"
                                             "s=-\r\n"
                                             "t=0 0\r\n"
                                             "a=fingerprint:sha-1 ",
      SHA1_FP, "\r\n", "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n", NULL);
  GstSDPMessage *sdp = parse_sdp (several);
  GPtrArray *fps = lk_sdp_get_fingerprints (sdp, 0);
  GError *error = NULL;

  fail_unless_equals_int (fps->len, 2);
  fail_unless_equals_string (
      ((LkSdpFingerprint *)g_ptr_array_index (fps, 1))->hash_func, "sha-512");
  /* the second one matches */
  fail_unless (lk_sdp_certificate_matches (test_cert, fps, &error));
  g_ptr_array_unref (fps);
  gst_sdp_message_free (sdp);

  /* sha-1 matches the certificate but is not accepted */
  sdp = parse_sdp (only_sha1);
  fps = lk_sdp_get_fingerprints (sdp, 0);
  fail_unless_equals_int (fps->len, 1);
  fail_if (lk_sdp_fingerprint_hash_accepted ("sha-1"));
  fail_unless (lk_sdp_fingerprint_hash_accepted ("sha-384"));
  fail_if (lk_sdp_certificate_matches (test_cert, fps, &error));
  fail_unless (g_error_matches (error, LK_ERROR, LK_ERROR_DTLS_FINGERPRINT));
  g_clear_error (&error);
  g_ptr_array_unref (fps);
  gst_sdp_message_free (sdp);

  /* mismatch and none at all */
  sdp = parse_sdp (subscriber_offer);
  fps = lk_sdp_get_fingerprints (sdp, 2);
  fail_unless_equals_int (fps->len, 1);
  fail_if (lk_sdp_certificate_matches (test_cert, fps, &error));
  g_clear_error (&error);
  g_ptr_array_unref (fps);
  fps = lk_sdp_get_fingerprints (sdp, 0);
  fail_unless (lk_sdp_certificate_matches (test_cert, fps, NULL));
  g_ptr_array_unref (fps);
  fail_if (lk_sdp_certificate_matches (test_cert, NULL, &error));
  g_clear_error (&error);
  gst_sdp_message_free (sdp);
}

GST_END_TEST;

GST_START_TEST (test_sdp_candidate_json)
{
  gchar *json, *cand = NULL, *mid = NULL;
  gint mline = -2;
  GError *error = NULL;

  json = lk_sdp_candidate_init_to_json ("candidate:1 1 UDP 2015363327 "
                                        "127.0.0.1 40000 typ host",
      "0", 0);
  fail_unless_equals_string (json,
      "{\"candidate\":\"candidate:1 1 UDP "
      "2015363327 127.0.0.1 40000 typ host\",\"sdpMid\":\"0\","
      "\"sdpMLineIndex\":0}");
  fail_unless (
      lk_sdp_candidate_init_from_json (json, &cand, &mid, &mline, NULL));
  fail_unless (g_str_has_prefix (cand, "candidate:1 1 UDP"));
  fail_unless_equals_string (mid, "0");
  fail_unless_equals_int (mline, 0);
  g_free (json);
  g_free (cand);
  g_free (mid);

  /* pion's shape without an index */
  fail_unless (lk_sdp_candidate_init_from_json (
      "{\"candidate\":\"c\","
      "\"sdpMid\":\"1\",\"usernameFragment\":\"u\"}",
      &cand, &mid, &mline, NULL));
  fail_unless_equals_int (mline, -1);
  g_free (cand);
  g_free (mid);

  fail_unless (
      !lk_sdp_candidate_init_from_json ("[1]", &cand, &mid, &mline, &error));
  g_clear_error (&error);
  fail_unless (!lk_sdp_candidate_init_from_json (
      "{\"candidate\":5}", &cand, &mid, &mline, &error));
  g_clear_error (&error);
  fail_unless (
      !lk_sdp_candidate_init_from_json ("{", &cand, &mid, &mline, &error));
  g_clear_error (&error);
  fail_unless (
      !lk_sdp_candidate_init_from_json (NULL, &cand, &mid, &mline, &error));
  g_clear_error (&error);
}

GST_END_TEST;

/* ---- tokens ---- */

/* Computed independently (Python hmac/hashlib) over the same claims. */
#define EXPECTED_JWT                                                           \
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJkZXZrZXkiLCJzdWIiOiJhbGlj"  \
  "ZSIsIm5hbWUiOiJBbGljZSIsIm5iZiI6MTY5OTk5OTk5MCwiZXhwIjoxNzAwMDAzNjAwLCJ2"   \
  "aWRlbyI6eyJyb29tIjoicjEiLCJyb29tSm9pbiI6dHJ1ZSwiY2FuUHVibGlzaCI6dHJ1ZSwi"   \
  "Y2FuU3Vic2NyaWJlIjp0cnVlLCJjYW5QdWJsaXNoRGF0YSI6dHJ1ZSwicm9vbUNyZWF0ZSI6"   \
  "dHJ1ZSwiY2FuVXBkYXRlT3duTWV0YWRhdGEiOnRydWV9fQ.fashMtt7LiDLukoil4zwcpGrEE"  \
  "J_fw_f9VENFK9JlSg"

GST_START_TEST (test_token_mint)
{
  GError *error = NULL;
  gchar *jwt = lk_token_mint ("devkey", "secret", "alice", "Alice", "r1", NULL,
      1700000000, 3600, &error);
  JsonObject *claims, *video;
  LkGrants sub_only = { FALSE, TRUE, FALSE, FALSE };

  fail_unless (jwt != NULL);
  fail_unless_equals_string (jwt, EXPECTED_JWT);
  fail_unless (lk_token_verify (jwt, "secret"));
  fail_if (lk_token_verify (jwt, "other"));
  claims = lk_token_peek_claims (jwt, &error);
  fail_unless (claims != NULL);
  fail_unless_equals_string (
      json_object_get_string_member (claims, "sub"), "alice");
  json_object_unref (claims);
  g_free (jwt);

  jwt = lk_token_mint (
      "k", "s", "bob", NULL, "r2", &sub_only, 1700000000, 60, NULL);
  claims = lk_token_peek_claims (jwt, NULL);
  video = json_object_get_object_member (claims, "video");
  fail_if (json_object_get_boolean_member (video, "canPublish"));
  fail_unless (json_object_get_boolean_member (video, "canSubscribe"));
  fail_if (json_object_has_member (video, "roomCreate"));
  fail_unless_equals_int (
      json_object_get_int_member (claims, "exp"), 1700000060);
  json_object_unref (claims);
  g_free (jwt);

  fail_unless (
      lk_token_mint (NULL, "s", "i", NULL, "r", NULL, 0, 1, &error) == NULL);
  fail_unless (g_error_matches (error, LK_ERROR, LK_ERROR_TOKEN));
  g_clear_error (&error);
  fail_unless (lk_token_peek_claims ("not-a-jwt", &error) == NULL);
  g_clear_error (&error);
  fail_unless (lk_token_peek_claims ("a.b.c.d", NULL) == NULL);
  fail_unless (lk_token_peek_claims ("a.!!!.c", NULL) == NULL);
  fail_if (lk_token_verify ("nodot", "s"));
}

GST_END_TEST;

/* Where a credential may go in clear. */
GST_START_TEST (test_token_url_private)
{
  fail_unless (lk_token_url_is_private ("https://jwt.example.org/"));
  fail_unless (lk_token_url_is_private ("wss://sfu.example.org"));
  fail_unless (lk_token_url_is_private ("http://127.0.0.1:8080"));
  fail_unless (lk_token_url_is_private ("http://localhost:8080/"));
  fail_unless (lk_token_url_is_private ("ws://[::1]:7880"));
  fail_if (lk_token_url_is_private ("http://jwt.example.org/"));
  fail_if (lk_token_url_is_private ("http://10.0.0.1:8080"));
  fail_if (lk_token_url_is_private ("not a url"));
  fail_if (lk_token_url_is_private (NULL));
}

GST_END_TEST;

GST_START_TEST (test_token_service_bodies)
{
  LkTokenRequest req = { 0 };
  gchar *body;

  req.room_id = g_strdup ("!room:example.org");
  req.slot_id = g_strdup ("m.call#ROOM");
  req.openid.access_token = g_strdup ("oidtoken");
  req.openid.token_type = g_strdup ("Bearer");
  req.openid.matrix_server_name = g_strdup ("example.org");
  req.openid.expires_in = 3600;
  req.member_id = g_strdup ("member1");
  req.user_id = g_strdup ("@alice:example.org");
  req.device_id = g_strdup ("DEV");

  body = lk_token_get_token_body (&req);
  fail_unless_equals_string (body,
      "{\"room_id\":\"!room:example.org\","
      "\"slot_id\":\"m.call#ROOM\",\"openid_token\":{\"access_token\":"
      "\"oidtoken\",\"token_type\":\"Bearer\",\"matrix_server_name\":"
      "\"example.org\",\"expires_in\":3600},\"member\":{\"id\":\"member1\","
      "\"claimed_user_id\":\"@alice:example.org\",\"claimed_device_id\":"
      "\"DEV\"}}");
  g_free (body);
  body = lk_token_sfu_get_body (&req);
  fail_unless_equals_string (body,
      "{\"room\":\"!room:example.org\","
      "\"openid_token\":{\"access_token\":\"oidtoken\",\"token_type\":"
      "\"Bearer\",\"matrix_server_name\":\"example.org\",\"expires_in\":3600},"
      "\"device_id\":\"DEV\"}");
  g_free (body);
  lk_token_request_clear (&req);
  fail_unless (req.room_id == NULL);
}

GST_END_TEST;

GST_START_TEST (test_token_service_replies)
{
  const gchar ok[] = "{\"url\":\"ws://127.0.0.1:7880\",\"jwt\":\"a.b.c\"}";
  const gchar err[] = "{\"errcode\":\"M_UNAUTHORIZED\",\"error\":\"bad "
                      "token\"}";
  gchar *url = NULL, *jwt = NULL;
  GError *error = NULL;

  fail_unless (lk_token_parse_reply (200, ok, strlen (ok), &url, &jwt, NULL));
  fail_unless_equals_string (url, "ws://127.0.0.1:7880");
  fail_unless_equals_string (jwt, "a.b.c");
  g_free (url);
  g_free (jwt);

  fail_unless (
      !lk_token_parse_reply (401, err, strlen (err), &url, &jwt, &error));
  fail_unless (g_error_matches (error, LK_ERROR, LK_ERROR_HTTP));
  fail_unless (strstr (error->message, "401") != NULL);
  fail_unless (strstr (error->message, "M_UNAUTHORIZED") != NULL);
  g_clear_error (&error);

  fail_unless (!lk_token_parse_reply (502, "<html>", 6, &url, &jwt, &error));
  fail_unless (strstr (error->message, "502") != NULL);
  g_clear_error (&error);
  fail_unless (
      !lk_token_parse_reply (200, "{\"url\":\"x\"}", 11, &url, &jwt, &error));
  fail_unless (g_error_matches (error, LK_ERROR, LK_ERROR_TOKEN));
  g_clear_error (&error);
  fail_unless (!lk_token_parse_reply (200, "[]", 2, &url, &jwt, &error));
  g_clear_error (&error);
  fail_unless (!lk_token_parse_reply (200, NULL, 0, &url, &jwt, &error));
  g_clear_error (&error);
}

GST_END_TEST;

static Suite *
lkunit_suite (void)
{
  Suite *s = suite_create ("livekit");
  TCase *tc_proto = tcase_create ("protobuf");
  TCase *tc_sdp = tcase_create ("sdp");
  TCase *tc_token = tcase_create ("token");

  suite_add_tcase (s, tc_proto);
  tcase_add_test (tc_proto, test_proto_add_track_known_answer);
  tcase_add_test (tc_proto, test_proto_join_response);
  tcase_add_test (tc_proto, test_proto_offer_map_and_pong);
  tcase_add_test (tc_proto, test_proto_malformed);
  tcase_add_test (tc_proto, test_proto_source_names);
  suite_add_tcase (s, tc_sdp);
  tcase_add_test (tc_sdp, test_sdp_media_and_track_map);
  tcase_add_test (tc_sdp, test_sdp_split_stream_id);
  tcase_add_test (tc_sdp, test_sdp_strip_red);
  tcase_add_test (tc_sdp, test_sdp_prefer_codec);
  tcase_add_test (tc_sdp, test_sdp_prefer_h264_profile);
  tcase_add_test (tc_sdp, test_sdp_pick_receive_codec);
  tcase_add_test (tc_sdp, test_sdp_fingerprint);
  tcase_add_test (tc_sdp, test_sdp_fingerprint_list);
  tcase_add_test (tc_sdp, test_sdp_candidate_json);
  suite_add_tcase (s, tc_token);
  tcase_add_test (tc_token, test_token_mint);
  tcase_add_test (tc_token, test_token_service_bodies);
  tcase_add_test (tc_token, test_token_url_private);
  tcase_add_test (tc_token, test_token_service_replies);
  return s;
}

GST_CHECK_MAIN (lkunit);
