/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* matrixrtcframeenc / matrixrtcframedec: known answers from livekit-client,
 * round trips through real encoders and decoders, bad frames, key changes and
 * ratchets while streaming. */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/rtp/gstrtpbuffer.h>

#include "../framecrypto/fctestvectors.h"

#define KEY_HEX "000102030405060708090a0b0c0d0e0f"

static const guint8 key_a[16]
    = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };

static const guint8 key_b[16]
    = { 0xbb, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };

static gchar *
hex_of (GBytes *bytes)
{
  gsize size, i;
  const guint8 *data = g_bytes_get_data (bytes, &size);
  GString *s = g_string_new (NULL);

  for (i = 0; i < size; i++)
    g_string_append_printf (s, "%02x", data[i]);
  return g_string_free (s, FALSE);
}

static void
configure_for_vector (GstElement *e, FcTestVector *v, gboolean use_signal)
{
  g_object_set (e, "keyring-size", v->keyring_size, "ratchet-window",
      v->ratchet_window, "failure-tolerance", v->failure_tolerance, "key-index",
      v->key_index, NULL);
  if (v->pbkdf2) {
    gchar *pass = g_strndup (
        g_bytes_get_data (v->material, NULL), g_bytes_get_size (v->material));

    g_object_set (e, "passphrase", pass, NULL);
    g_free (pass);
  } else if (use_signal) {
    gboolean ok = FALSE;

    g_signal_emit_by_name (e, "set-key", v->key_index, v->material, &ok);
    fail_unless (ok);
  } else {
    gchar *hex = hex_of (v->material);

    g_object_set (e, "key", hex, NULL);
    g_free (hex);
  }
}

static GstBuffer *
buffer_of (GBytes *bytes, gboolean key_frame)
{
  /* gst_buffer_new_wrapped_bytes() takes its own reference */
  GstBuffer *b = gst_buffer_new_wrapped_bytes (bytes);

  if (!key_frame)
    GST_BUFFER_FLAG_SET (b, GST_BUFFER_FLAG_DELTA_UNIT);
  GST_BUFFER_PTS (b) = 0;
  return b;
}

static void
assert_buffer_equals (GstBuffer *buf, GBytes *expected)
{
  GstMapInfo map;

  fail_unless (gst_buffer_map (buf, &map, GST_MAP_READ));
  fail_unless_equals_int (map.size, g_bytes_get_size (expected));
  fail_unless (
      memcmp (map.data, g_bytes_get_data (expected, NULL), map.size) == 0);
  gst_buffer_unmap (buf, &map);
}

/* Every livekit-client vector decrypts through matrixrtcframedec, with the key
 * given as a property and through set-key. */
GST_START_TEST (test_kat_decrypt)
{
  GPtrArray *vectors = fc_test_vectors_load ();
  guint i, mode;

  for (i = 0; i < vectors->len; i++) {
    FcTestVector *v = g_ptr_array_index (vectors, i);

    for (mode = 0; mode < 2; mode++) {
      GstHarness *h = gst_harness_new ("matrixrtcframedec");
      GstBuffer *out;

      GST_INFO ("vector %s, key by %s", v->name, mode ? "signal" : "property");
      configure_for_vector (h->element, v, mode == 1);
      gst_harness_set_src_caps_str (h, v->caps);
      fail_unless_equals_int (
          gst_harness_push (h, buffer_of (v->expected_output, v->key_frame)),
          GST_FLOW_OK);
      out = gst_harness_pull (h);
      fail_unless (out != NULL);
      assert_buffer_equals (out, v->expected_decrypted);
      fail_unless_equals_uint64 (GST_BUFFER_PTS (out), 0);
      gst_buffer_unref (out);
      gst_harness_teardown (h);
    }
  }
  g_ptr_array_unref (vectors);
}

GST_END_TEST;

/* matrixrtcframeenc keeps the livekit layout: the clear header (AAD) of the
 * vector, then ciphertext, tag, IV, 0x0C and the key index; its output
 * decrypts back to the plaintext. */
GST_START_TEST (test_kat_encrypt_layout)
{
  GPtrArray *vectors = fc_test_vectors_load ();
  guint i;

  for (i = 0; i < vectors->len; i++) {
    FcTestVector *v = g_ptr_array_index (vectors, i);
    GstHarness *enc = gst_harness_new ("matrixrtcframeenc");
    GstHarness *dec = gst_harness_new ("matrixrtcframedec");
    GstBuffer *ct, *pt;
    GstMapInfo map;
    gsize clear = v->clear_bytes;

    configure_for_vector (enc->element, v, FALSE);
    configure_for_vector (dec->element, v, FALSE);
    gst_harness_set_src_caps_str (enc, v->caps);
    gst_harness_set_src_caps_str (dec, v->caps);
    fail_unless_equals_int (
        gst_harness_push (enc, buffer_of (v->plaintext, v->key_frame)),
        GST_FLOW_OK);
    ct = gst_harness_pull (enc);
    fail_unless (gst_buffer_map (ct, &map, GST_MAP_READ));
    fail_unless (map.size >= g_bytes_get_size (v->plaintext) + FC_OVERHEAD);
    /* the vectors' headers use 4-byte start codes: same clear bytes */
    fail_unless (
        memcmp (map.data, g_bytes_get_data (v->expected_output, NULL), clear)
        == 0);
    fail_unless_equals_int (map.data[map.size - 1], v->key_index);
    fail_unless_equals_int (map.data[map.size - 2], FC_IV_LEN);
    gst_buffer_unmap (ct, &map);
    fail_unless_equals_int (gst_harness_push (dec, ct), GST_FLOW_OK);
    pt = gst_harness_pull (dec);
    assert_buffer_equals (pt, v->plaintext);
    gst_buffer_unref (pt);
    gst_harness_teardown (enc);
    gst_harness_teardown (dec);
  }
  g_ptr_array_unref (vectors);
}

GST_END_TEST;

/* Round trips through real encoders and decoders: a tee feeds the same
 * encoded stream to a plain decoder and to enc ! dec ! decoder; the decoded
 * outputs must be identical, frame by frame. */
typedef struct
{
  GPtrArray *plain;
  GPtrArray *decrypted;
  guint encrypted_frames;
  gboolean encrypted_differs;
} RoundTrip;

static void
on_handoff (GstElement *sink, GstBuffer *buf, GstPad *pad, GPtrArray *store)
{
  g_ptr_array_add (store, gst_buffer_ref (buf));
}

static GstPadProbeReturn
on_encrypted (GstPad *pad, GstPadProbeInfo *info, RoundTrip *rt)
{
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);

  if (gst_buffer_get_size (buf) > FC_OVERHEAD) {
    GstMapInfo map;

    rt->encrypted_frames++;
    gst_buffer_map (buf, &map, GST_MAP_READ);
    if (map.data[map.size - 2] == FC_IV_LEN)
      rt->encrypted_differs = TRUE;
    gst_buffer_unmap (buf, &map);
  }
  return GST_PAD_PROBE_OK;
}

typedef struct
{
  GstPadProbeCallback func;
  gpointer data;
} RtpProbe;

static gboolean
probe_list_item (GstBuffer **buf, guint idx, gpointer user_data)
{
  RtpProbe *probe = user_data;
  GstPadProbeInfo info = {
    0,
  };

  info.type = GST_PAD_PROBE_TYPE_BUFFER;
  info.data = *buf;
  probe->func (NULL, &info, probe->data);
  return TRUE;
}

/* Calls the RTP check for every buffer, also those pushed in lists. */
static GstPadProbeReturn
on_rtp (GstPad *pad, GstPadProbeInfo *info, RtpProbe *probe)
{
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST)
    gst_buffer_list_foreach (
        GST_PAD_PROBE_INFO_BUFFER_LIST (info), probe_list_item, probe);
  else
    probe->func (pad, info, probe->data);
  return GST_PAD_PROBE_OK;
}

/* @transport goes between encryptor and decryptor, @plain_transport (if
 * any) into the branch without encryption. */
static void
run_roundtrip_full (const gchar *source, const gchar *decoder, guint min_frames,
    const gchar *transport, const gchar *plain_transport,
    GstPadProbeCallback rtp_probe, gpointer rtp_probe_data)
{
  RtpProbe probe = { rtp_probe, rtp_probe_data };
  gchar *desc;
  GstElement *pipeline, *e;
  GstPad *pad;
  GstBus *bus;
  GstMessage *msg;
  RoundTrip rt
      = { g_ptr_array_new_with_free_func ((GDestroyNotify)gst_buffer_unref),
          g_ptr_array_new_with_free_func ((GDestroyNotify)gst_buffer_unref), 0,
          FALSE };
  GstStructure *stats;
  guint64 frames = 0, failures = 1;
  guint i;

  desc = g_strdup_printf (
      "%s ! tee name=t "
      "t. ! queue ! %s%s %s ! fakesink name=plain signal-handoffs=true "
      "sync=false "
      "t. ! queue ! matrixrtcframeenc name=enc key=" KEY_HEX " key-index=%u ! "
      "%s%s matrixrtcframedec name=dec key=" KEY_HEX " key-index=%u ! %s ! "
      "fakesink name=decrypted signal-handoffs=true sync=false",
      source, plain_transport ? plain_transport : "",
      plain_transport ? " !" : "", decoder, transport ? 0 : 4,
      transport ? transport : "", transport ? " !" : "", transport ? 0 : 4,
      decoder);
  GST_INFO ("pipeline: %s", desc);
  pipeline = gst_parse_launch (desc, NULL);
  fail_unless (pipeline != NULL, "cannot build %s", desc);
  g_free (desc);

  e = gst_bin_get_by_name (GST_BIN (pipeline), "plain");
  g_signal_connect (e, "handoff", G_CALLBACK (on_handoff), rt.plain);
  gst_object_unref (e);
  e = gst_bin_get_by_name (GST_BIN (pipeline), "decrypted");
  g_signal_connect (e, "handoff", G_CALLBACK (on_handoff), rt.decrypted);
  gst_object_unref (e);
  e = gst_bin_get_by_name (GST_BIN (pipeline), "enc");
  pad = gst_element_get_static_pad (e, "src");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER,
      (GstPadProbeCallback)on_encrypted, &rt, NULL);
  gst_object_unref (pad);
  gst_object_unref (e);
  if (rtp_probe) {
    e = gst_bin_get_by_name (GST_BIN (pipeline), "pay");
    fail_unless (e != NULL);
    pad = gst_element_get_static_pad (e, "src");
    gst_pad_add_probe (pad,
        GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
        (GstPadProbeCallback)on_rtp, &probe, NULL);
    gst_object_unref (pad);
    gst_object_unref (e);
  }

  fail_unless (gst_element_set_state (pipeline, GST_STATE_PLAYING)
               != GST_STATE_CHANGE_FAILURE);
  bus = gst_element_get_bus (pipeline);
  msg = gst_bus_timed_pop_filtered (
      bus, 60 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "timeout");
  fail_unless (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS,
      "error: %" GST_PTR_FORMAT, msg);
  gst_message_unref (msg);
  gst_object_unref (bus);

  e = gst_bin_get_by_name (GST_BIN (pipeline), "dec");
  g_object_get (e, "stats", &stats, NULL);
  fail_unless (gst_structure_get_uint64 (stats, "frames", &frames));
  fail_unless (gst_structure_get_uint64 (stats, "failures", &failures));
  fail_unless_equals_uint64 (failures, 0);
  fail_unless_equals_uint64 (frames, rt.encrypted_frames);
  gst_structure_free (stats);
  gst_object_unref (e);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);

  GST_INFO ("%u encrypted frames, %u decoded", rt.encrypted_frames,
      rt.decrypted->len);
  fail_unless (rt.encrypted_differs);
  fail_unless (rt.encrypted_frames >= min_frames);
  fail_unless (rt.plain->len >= min_frames);
  fail_unless_equals_int (rt.decrypted->len, rt.plain->len);
  for (i = 0; i < rt.plain->len; i++) {
    GstMapInfo a, b;

    gst_buffer_map (g_ptr_array_index (rt.plain, i), &a, GST_MAP_READ);
    gst_buffer_map (g_ptr_array_index (rt.decrypted, i), &b, GST_MAP_READ);
    fail_unless_equals_int (a.size, b.size);
    fail_unless (
        memcmp (a.data, b.data, a.size) == 0, "decoded frame %u differs", i);
    gst_buffer_unmap (g_ptr_array_index (rt.plain, i), &a);
    gst_buffer_unmap (g_ptr_array_index (rt.decrypted, i), &b);
  }
  g_ptr_array_unref (rt.plain);
  g_ptr_array_unref (rt.decrypted);
}

static void
run_roundtrip (const gchar *source, const gchar *decoder, guint min_frames)
{
  run_roundtrip_full (source, decoder, min_frames, NULL, NULL, NULL, NULL);
}

#define RAW_VIDEO                                                              \
  "videotestsrc num-buffers=30 pattern=ball ! "                                \
  "video/x-raw,format=I420,width=160,height=120,framerate=30/1"

GST_START_TEST (test_roundtrip_vp8)
{
  run_roundtrip (
      RAW_VIDEO " ! vp8enc deadline=1 keyframe-max-dist=10", "vp8dec", 30);
}

GST_END_TEST;

GST_START_TEST (test_roundtrip_vp9)
{
  run_roundtrip (
      RAW_VIDEO " ! vp9enc deadline=1 keyframe-max-dist=10", "vp9dec", 30);
}

GST_END_TEST;

GST_START_TEST (test_roundtrip_h264)
{
  run_roundtrip (RAW_VIDEO
      " ! openh264enc gop-size=10 ! h264parse ! "
      "video/x-h264,stream-format=byte-stream,alignment=au",
      "avdec_h264", 30);
}

GST_END_TEST;

GST_START_TEST (test_roundtrip_h265)
{
  run_roundtrip (
      "videotestsrc num-buffers=12 pattern=ball ! "
      "video/x-raw,format=I420,width=160,height=128,framerate=30/1 ! "
      "x265enc speed-preset=ultrafast tune=zerolatency key-int-max=6 ! "
      "h265parse ! video/x-h265,stream-format=byte-stream,alignment=au",
      "avdec_h265", 12);
}

GST_END_TEST;

GST_START_TEST (test_roundtrip_opus)
{
  run_roundtrip ("audiotestsrc num-buffers=50 samplesperbuffer=960 ! "
                 "audio/x-raw,rate=48000,channels=1 ! opusenc",
      "opusdec", 40);
}

GST_END_TEST;

static GstBuffer *
encrypt_one (GstHarness *enc, const guint8 *data, gsize size)
{
  GstBuffer *out;

  fail_unless_equals_int (
      gst_harness_push (enc, gst_buffer_new_memdup (data, size)), GST_FLOW_OK);
  out = gst_harness_pull (enc);
  fail_unless (out != NULL);
  return out;
}

static guint64
stats_u64 (GstElement *e, const gchar *field)
{
  GstStructure *s;
  guint64 v = 0;

  g_object_get (e, "stats", &s, NULL);
  fail_unless (gst_structure_get_uint64 (s, field, &v));
  gst_structure_free (s);
  return v;
}

static guint
count_error_messages (GstBus *bus, guint expected_index)
{
  GstMessage *m;
  guint n = 0;

  while ((m = gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT))) {
    const GstStructure *s = gst_message_get_structure (m);
    guint index = G_MAXUINT;

    if (gst_structure_has_name (s, "matrixrtc-frame-crypto-error")) {
      fail_unless (gst_structure_get_uint (s, "key-index", &index));
      fail_unless_equals_int (index, expected_index);
      n++;
    }
    gst_message_unref (m);
  }
  return n;
}

/* Tampered, truncated, empty, wrong-key-index and garbage frames are dropped
 * (empty ones pass), counted and reported; nothing reaches the decoder. */
GST_START_TEST (test_bad_frames)
{
  GstHarness *enc = gst_harness_new ("matrixrtcframeenc");
  GstHarness *dec = gst_harness_new ("matrixrtcframedec");
  GstBus *bus = gst_bus_new ();
  guint8 frame[200], garbage[100];
  GstBuffer *ct, *b, *out;
  GstMapInfo map;
  guint i;

  gst_element_set_bus (dec->element, bus);
  g_object_set (enc->element, "key", KEY_HEX, NULL);
  g_object_set (dec->element, "key", KEY_HEX, "failure-tolerance", -1, NULL);
  gst_harness_set_src_caps_str (enc, "video/x-vp8");
  gst_harness_set_src_caps_str (dec, "video/x-vp8");
  for (i = 0; i < sizeof (frame); i++)
    frame[i] = i * 7;
  frame[0] = 0x10; /* key frame */
  ct = encrypt_one (enc, frame, sizeof (frame));

  /* tampered ciphertext, clear header and tag */
  for (i = 0; i < 3; i++) {
    gsize at = i == 0 ? 50 : i == 1 ? 4 : gst_buffer_get_size (ct) - 20;

    b = gst_buffer_copy_deep (ct);
    gst_buffer_map (b, &map, GST_MAP_WRITE);
    map.data[at] ^= 1;
    gst_buffer_unmap (b, &map);
    fail_unless_equals_int (gst_harness_push (dec, b), GST_FLOW_OK);
  }
  /* truncated, keeping the last byte (the key index) */
  b = gst_buffer_copy_region (
      ct, GST_BUFFER_COPY_ALL, 1, gst_buffer_get_size (ct) - 1);
  fail_unless_equals_int (gst_harness_push (dec, b), GST_FLOW_OK);
  b = gst_buffer_copy_region (
      ct, GST_BUFFER_COPY_ALL, 150, gst_buffer_get_size (ct) - 150);
  fail_unless_equals_int (gst_harness_push (dec, b), GST_FLOW_OK);
  /* too short for a trailer */
  fail_unless_equals_int (
      gst_harness_push (dec, gst_buffer_new_memdup ("\x10\x00", 2)),
      GST_FLOW_OK);
  fail_unless_equals_int (
      gst_harness_push (dec, gst_buffer_new_memdup ("\x00", 1)), GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_buffers_received (dec), 0);
  fail_unless_equals_int (count_error_messages (bus, 0), 1);
  fail_unless_equals_uint64 (stats_u64 (dec->element, "failures"), 7);

  /* wrong key index: no key at 9 */
  b = gst_buffer_copy_deep (ct);
  gst_buffer_map (b, &map, GST_MAP_WRITE);
  map.data[map.size - 1] = 9;
  gst_buffer_unmap (b, &map);
  fail_unless_equals_int (gst_harness_push (dec, b), GST_FLOW_OK);
  fail_unless_equals_int (count_error_messages (bus, 9), 1);

  /* garbage, all ending in key index 0 */
  for (i = 0; i < 50; i++) {
    guint j, len = g_random_int_range (1, sizeof (garbage));

    for (j = 0; j < len; j++)
      garbage[j] = g_random_int_range (0, 256);
    garbage[len - 1] = 0;
    fail_unless_equals_int (
        gst_harness_push (dec, gst_buffer_new_memdup (garbage, len)),
        GST_FLOW_OK);
  }
  fail_unless_equals_int (gst_harness_buffers_received (dec), 0);
  /* rate-limited: at most one report per second for index 0, not one per
   * frame */
  fail_unless (count_error_messages (bus, 0) <= 1);
  fail_unless_equals_uint64 (stats_u64 (dec->element, "dropped"), 58);

  /* empty frames pass through; the valid one still decrypts */
  fail_unless_equals_int (
      gst_harness_push (dec, gst_buffer_new ()), GST_FLOW_OK);
  out = gst_harness_pull (dec);
  fail_unless_equals_int (gst_buffer_get_size (out), 0);
  gst_buffer_unref (out);
  fail_unless_equals_int (gst_harness_push (dec, ct), GST_FLOW_OK);
  out = gst_harness_pull (dec);
  gst_buffer_map (out, &map, GST_MAP_READ);
  fail_unless_equals_int (map.size, sizeof (frame));
  fail_unless (memcmp (map.data, frame, sizeof (frame)) == 0);
  gst_buffer_unmap (out, &map);
  gst_buffer_unref (out);
  fail_unless_equals_uint64 (stats_u64 (dec->element, "passthrough"), 1);
  fail_unless_equals_uint64 (stats_u64 (dec->element, "frames"), 1);

  gst_element_set_bus (dec->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (enc);
  gst_harness_teardown (dec);
}

GST_END_TEST;

/* After more than failure-tolerance failures an index is dropped until a key
 * is set there again. */
GST_START_TEST (test_failure_tolerance)
{
  GstHarness *enc = gst_harness_new ("matrixrtcframeenc");
  GstHarness *dec = gst_harness_new ("matrixrtcframedec");
  guint8 frame[60] = { 0x78, 1, 2, 3 };
  GBytes *right = g_bytes_new_static (key_a, 16);
  GBytes *wrong = g_bytes_new_static (key_b, 16);
  gboolean ok;
  guint i;

  g_signal_emit_by_name (enc->element, "set-key", 2, right, &ok);
  fail_unless (ok);
  g_signal_emit_by_name (dec->element, "set-key", 2, wrong, &ok);
  g_object_set (
      dec->element, "failure-tolerance", 3, "ratchet-window", 1, NULL);
  gst_harness_set_src_caps_str (enc, "audio/x-opus");
  gst_harness_set_src_caps_str (dec, "audio/x-opus");
  for (i = 0; i < 6; i++)
    gst_harness_push (dec, encrypt_one (enc, frame, sizeof (frame)));
  fail_unless_equals_int (gst_harness_buffers_received (dec), 0);
  g_signal_emit_by_name (dec->element, "set-key", 2, right, &ok);
  gst_harness_push (dec, encrypt_one (enc, frame, sizeof (frame)));
  fail_unless_equals_int (gst_harness_buffers_received (dec), 1);
  g_bytes_unref (right);
  g_bytes_unref (wrong);
  gst_harness_teardown (enc);
  gst_harness_teardown (dec);
}

GST_END_TEST;

static void
push_through (GstHarness *enc, GstHarness *dec, guint n, guint8 first_byte)
{
  guint8 frame[300];
  guint i;

  for (i = 0; i < n; i++) {
    GstBuffer *out;
    GstMapInfo map;

    memset (frame, i, sizeof (frame));
    frame[0] = first_byte;
    gst_harness_push (dec, encrypt_one (enc, frame, sizeof (frame)));
    out = gst_harness_pull (dec);
    fail_unless (out != NULL);
    gst_buffer_map (out, &map, GST_MAP_READ);
    fail_unless_equals_int (map.size, sizeof (frame));
    fail_unless (memcmp (map.data, frame, sizeof (frame)) == 0);
    gst_buffer_unmap (out, &map);
    gst_buffer_unref (out);
  }
}

/* A new key at a new index, then a sender ratchet, in the middle of a
 * stream: every frame decrypts (the decryptor auto-ratchets). */
GST_START_TEST (test_key_change_and_ratchet)
{
  GstHarness *enc = gst_harness_new ("matrixrtcframeenc");
  GstHarness *dec = gst_harness_new ("matrixrtcframedec");
  GBytes *key2 = g_bytes_new_static (key_b, 16);
  GstStructure *stats;
  gboolean ok;
  guint index;

  g_object_set (enc->element, "key", KEY_HEX, NULL);
  g_object_set (dec->element, "key", KEY_HEX, NULL);
  gst_harness_set_src_caps_str (enc, "video/x-vp8");
  gst_harness_set_src_caps_str (dec, "video/x-vp8");
  push_through (enc, dec, 5, 0x31);

  /* the receiver gets the new key first, then the sender switches */
  g_signal_emit_by_name (dec->element, "set-key", 1, key2, &ok);
  fail_unless (ok);
  push_through (enc, dec, 3, 0x31);
  g_signal_emit_by_name (enc->element, "set-key", 1, key2, &ok);
  fail_unless (ok);
  push_through (enc, dec, 5, 0x10);

  g_signal_emit_by_name (enc->element, "ratchet-key", 1, &ok);
  fail_unless (ok);
  g_signal_emit_by_name (enc->element, "ratchet-key", 1, &ok);
  fail_unless (ok);
  push_through (enc, dec, 5, 0x31);
  g_signal_emit_by_name (enc->element, "ratchet-key", 77, &ok);
  fail_if (ok);

  g_object_get (dec->element, "stats", &stats, NULL);
  GST_INFO ("stats %" GST_PTR_FORMAT, stats);
  fail_unless (gst_structure_get_uint (stats, "current-key-index", &index));
  fail_unless_equals_int (index, 1);
  {
    const GValue *keys = gst_structure_get_value (stats, "keys");
    guint i, seen = 0;

    for (i = 0; i < gst_value_array_get_size (keys); i++) {
      const GstStructure *k
          = gst_value_get_structure (gst_value_array_get_value (keys, i));
      guint64 frames, ratchets;

      gst_structure_get_uint (k, "index", &index);
      gst_structure_get_uint64 (k, "frames", &frames);
      gst_structure_get_uint64 (k, "ratchets", &ratchets);
      if (index == 0) {
        fail_unless_equals_uint64 (frames, 8);
        seen++;
      } else if (index == 1) {
        fail_unless_equals_uint64 (frames, 10);
        fail_unless_equals_uint64 (ratchets, 2);
        seen++;
      }
    }
    fail_unless_equals_int (seen, 2);
  }
  gst_structure_free (stats);
  g_bytes_unref (key2);
  gst_harness_teardown (enc);
  gst_harness_teardown (dec);
}

GST_END_TEST;

typedef struct
{
  GstElement *enc;
  GstElement *dec;
  gint stop;
  gint calls;
} KeyThread;

static gpointer
set_key_loop (gpointer data)
{
  KeyThread *kt = data;
  GBytes *material = g_bytes_new_static (key_b, 16);

  while (!g_atomic_int_get (&kt->stop)) {
    guint index = (guint)g_atomic_int_get (&kt->calls) % 8;
    gboolean ok = FALSE;

    /* receiver first, as a key distribution does */
    g_signal_emit_by_name (kt->dec, "set-key", index, material, &ok);
    fail_unless (ok);
    g_signal_emit_by_name (kt->enc, "set-key", index, material, &ok);
    fail_unless (ok);
    g_object_set (kt->dec, "sif-trailer", "4c4b2d524f434b53", NULL);
    g_atomic_int_inc (&kt->calls);
    g_usleep (100);
  }
  g_bytes_unref (material);
  return NULL;
}

/* set-key from another thread while frames stream. */
GST_START_TEST (test_set_key_from_thread)
{
  GstHarness *enc = gst_harness_new ("matrixrtcframeenc");
  GstHarness *dec = gst_harness_new ("matrixrtcframedec");
  KeyThread kt = { enc->element, dec->element, 0, 0 };
  GBytes *material = g_bytes_new_static (key_b, 16);
  GThread *thread;
  gboolean ok;

  g_signal_emit_by_name (dec->element, "set-key", 0, material, &ok);
  g_signal_emit_by_name (enc->element, "set-key", 0, material, &ok);
  gst_harness_set_src_caps_str (enc, "video/x-h264, "
                                     "stream-format=byte-stream, alignment=au");
  gst_harness_set_src_caps_str (dec, "video/x-h264, "
                                     "stream-format=byte-stream, alignment=au");
  thread = g_thread_new ("set-key", set_key_loop, &kt);
  {
    guint8 frame[400] = { 0, 0, 0, 1, 0x65, 0x88 };
    guint i;

    gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

    /* at least 1000 frames, and until the thread set keys a few times */
    for (i = 0; i < 1000
                || (g_atomic_int_get (&kt.calls) < 10
                    && g_get_monotonic_time () < deadline);
         i++) {
      GstBuffer *out;

      memset (frame + 6, i, sizeof (frame) - 6);
      gst_harness_push (dec, encrypt_one (enc, frame, sizeof (frame)));
      out = gst_harness_pull (dec);
      fail_unless (out != NULL);
      fail_unless_equals_int (gst_buffer_get_size (out), sizeof (frame));
      gst_buffer_unref (out);
    }
  }
  g_atomic_int_set (&kt.stop, 1);
  g_thread_join (thread);
  GST_INFO ("%d set-key calls while streaming", g_atomic_int_get (&kt.calls));
  fail_unless (g_atomic_int_get (&kt.calls) >= 10);
  g_bytes_unref (material);
  gst_harness_teardown (enc);
  gst_harness_teardown (dec);
}

GST_END_TEST;

static GstBuffer *
buffer_of_hex (const gchar *hex)
{
  GBytes *b = fc_hex_decode (hex);
  GstBuffer *buf;

  fail_unless (b != NULL);
  buf = gst_buffer_new_wrapped_bytes (b);
  g_bytes_unref (b);
  return buf;
}

/* Properties: defaults; key and key-index in any order before start; the
 * shared-key (passphrase) mode's defaults; key-index only selects once
 * running; key-derivation; invalid hex; no key; SIF. */
GST_START_TEST (test_properties)
{
  GstElement *enc_e = gst_element_factory_make ("matrixrtcframeenc", NULL);
  GstElement *dec_e = gst_element_factory_make ("matrixrtcframedec", NULL);
  GstHarness *enc, *dec;
  GBytes *material = g_bytes_new_static (key_a, 16);
  guint8 frame[40] = { 0x78 };
  GstBuffer *ct, *out;
  GstMapInfo map;
  gchar *sif;
  gboolean ok;
  guint u;
  gint i, kdf;

  g_object_get (dec_e, "ratchet-window", &u, NULL);
  fail_unless_equals_int (u, 10);
  g_object_get (dec_e, "failure-tolerance", &i, NULL);
  fail_unless_equals_int (i, 10);
  g_object_get (dec_e, "keyring-size", &u, NULL);
  fail_unless_equals_int (u, 256);
  g_object_get (dec_e, "key-index", &u, NULL);
  fail_unless_equals_int (u, 0);
  g_object_get (dec_e, "key-derivation", &kdf, NULL);
  fail_unless_equals_int (kdf, 0); /* hkdf */

  /* before start: key first, key-index later (or the other way round) */
  g_object_set (enc_e, "passphrase", "shared secret", "key-index", 7, NULL);
  g_object_set (dec_e, "key-index", 7, "passphrase", "shared secret", NULL);
  /* the shared-key mode, as Element Call has it */
  g_object_get (dec_e, "ratchet-window", &u, "failure-tolerance", &i,
      "key-derivation", &kdf, NULL);
  fail_unless_equals_int (u, 0);
  fail_unless_equals_int (i, -1);
  fail_unless_equals_int (kdf, 1); /* pbkdf2 */
  enc = gst_harness_new_with_element (enc_e, "sink", "src");
  dec = gst_harness_new_with_element (dec_e, "sink", "src");
  gst_object_unref (enc_e);
  gst_object_unref (dec_e);
  gst_harness_set_src_caps_str (enc, "audio/x-opus");
  gst_harness_set_src_caps_str (dec, "audio/x-opus");
  ct = encrypt_one (enc, frame, sizeof (frame));
  gst_buffer_map (ct, &map, GST_MAP_READ);
  fail_unless_equals_int (map.data[map.size - 1], 7);
  gst_buffer_unmap (ct, &map);
  gst_harness_push (dec, ct);
  fail_unless_equals_int (gst_harness_buffers_received (dec), 1);

  /* running: key-index selects only, the key at 7 is not copied to 1 */
  g_object_set (enc->element, "key-index", 1, NULL);
  fail_unless_equals_int (
      gst_harness_push (enc, gst_buffer_new_memdup (frame, sizeof (frame))),
      GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_buffers_received (enc), 1);
  fail_unless_equals_uint64 (stats_u64 (enc->element, "dropped"), 1);
  /* invalid hex is refused without effect */
  g_object_set (enc->element, "key", "not hex!", NULL);
  fail_unless_equals_int (
      gst_harness_push (enc, gst_buffer_new_memdup (frame, sizeof (frame))),
      GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_buffers_received (enc), 1);
  /* a key now is stored at key-index 1 at once (HKDF: the key property
   * selects the per-member mode) */
  g_object_set (enc->element, "key", KEY_HEX, NULL);
  g_object_get (enc->element, "key-derivation", &kdf, NULL);
  fail_unless_equals_int (kdf, 0);
  ct = encrypt_one (enc, frame, sizeof (frame));
  gst_buffer_map (ct, &map, GST_MAP_READ);
  fail_unless_equals_int (map.data[map.size - 1], 1);
  gst_buffer_unmap (ct, &map);
  /* the decryptor is in the shared-key mode: set-key derives with PBKDF2
   * unless key-derivation says otherwise */
  g_signal_emit_by_name (dec->element, "set-key", 1, material, &ok);
  fail_unless (ok);
  gst_harness_push (dec, gst_buffer_ref (ct));
  fail_unless_equals_int (gst_harness_buffers_received (dec), 1);
  g_object_set (dec->element, "key-derivation", 0, NULL);
  g_signal_emit_by_name (dec->element, "set-key", 1, material, &ok);
  fail_unless (ok);
  gst_harness_push (dec, ct);
  fail_unless_equals_int (gst_harness_buffers_received (dec), 2);
  gst_buffer_unref (gst_harness_pull (dec));
  gst_buffer_unref (gst_harness_pull (dec));

  /* SIF: only the known blank frames pass */
  g_object_set (dec->element, "sif-trailer", "xyz", NULL);
  g_object_get (dec->element, "sif-trailer", &sif, NULL);
  fail_unless (sif == NULL);
  g_object_set (dec->element, "sif-trailer", "4C4B2D524F434B53", NULL);
  g_object_get (dec->element, "sif-trailer", &sif, NULL);
  fail_unless_equals_string (sif, "4C4B2D524F434B53");
  g_free (sif);
  fail_unless_equals_int (
      gst_harness_push (dec, gst_buffer_new_memdup ("\x78\x01LK-ROCKS", 10)),
      GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_buffers_received (dec), 2);
  fail_unless_equals_uint64 (stats_u64 (dec->element, "dropped"), 2);
  fail_unless_equals_int (
      gst_harness_push (
          dec, buffer_of_hex (FC_TEST_SIF_OPUS_HEX "4c4b2d524f434b53")),
      GST_FLOW_OK);
  out = gst_harness_pull (dec);
  fail_unless_equals_int (gst_buffer_get_size (out), 80);
  gst_buffer_unref (out);
  fail_unless_equals_uint64 (stats_u64 (dec->element, "passthrough"), 1);
  g_bytes_unref (material);
  gst_harness_teardown (enc);
  gst_harness_teardown (dec);
}

GST_END_TEST;

/* Garbage with every key index byte: a few reports per second in all, not
 * one per key index. */
GST_START_TEST (test_report_limit)
{
  GstHarness *dec = gst_harness_new ("matrixrtcframedec");
  GstBus *bus = gst_bus_new ();
  guint8 garbage[64];
  GstMessage *m;
  guint i, n = 0;

  gst_element_set_bus (dec->element, bus);
  g_object_set (dec->element, "key", KEY_HEX, NULL);
  gst_harness_set_src_caps_str (dec, "video/x-vp8");
  memset (garbage, 0x42, sizeof (garbage));
  for (i = 0; i < 256; i++) {
    garbage[sizeof (garbage) - 1] = i;
    gst_harness_push (dec, gst_buffer_new_memdup (garbage, sizeof (garbage)));
  }
  while ((m = gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT))) {
    if (gst_message_has_name (m, "matrixrtc-frame-crypto-error"))
      n++;
    gst_message_unref (m);
  }
  GST_INFO ("%u reports for 256 dropped frames", n);
  fail_unless (n >= 1 && n <= 8);
  fail_unless_equals_uint64 (stats_u64 (dec->element, "dropped"), 256);
  gst_element_set_bus (dec->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (dec);
}

GST_END_TEST;

static guint
count_key_unit_requests (GstHarness *h)
{
  GstEvent *ev;
  guint n = 0;

  while ((ev = gst_harness_try_pull_upstream_event (h))) {
    if (GST_EVENT_TYPE (ev) == GST_EVENT_CUSTOM_UPSTREAM
        && gst_event_has_name (ev, "GstForceKeyUnit")) {
      gboolean all_headers = FALSE;

      fail_unless (gst_structure_get_boolean (
          gst_event_get_structure (ev), "all-headers", &all_headers));
      fail_unless (all_headers);
      n++;
    }
    gst_event_unref (ev);
  }
  return n;
}

/* A dropped frame: the next output is DISCONT and a key frame is requested
 * upstream (rate-limited; not for audio). The encryptor asks its encoder
 * for a key frame when frames flow again after drops. */
GST_START_TEST (test_drop_recovery)
{
  GstHarness *enc = gst_harness_new ("matrixrtcframeenc");
  GstHarness *dec = gst_harness_new ("matrixrtcframedec");
  guint8 frame[200];
  GstBuffer *ct, *bad, *out;
  GstMapInfo map;

  memset (frame, 0x21, sizeof (frame));
  frame[0] = 0x31; /* VP8 delta frame */
  g_object_set (enc->element, "key", KEY_HEX, NULL);
  g_object_set (dec->element, "key", KEY_HEX, "failure-tolerance", -1, NULL);
  gst_harness_set_src_caps_str (enc, "video/x-vp8");
  gst_harness_set_src_caps_str (dec, "video/x-vp8");
  count_key_unit_requests (dec);

  ct = encrypt_one (enc, frame, sizeof (frame));
  gst_harness_push (dec, gst_buffer_ref (ct));
  out = gst_harness_pull (dec);
  fail_if (GST_BUFFER_FLAG_IS_SET (out, GST_BUFFER_FLAG_DISCONT));
  gst_buffer_unref (out);
  fail_unless_equals_int (count_key_unit_requests (dec), 0);

  /* tampered: dropped, a key frame requested, the next frame DISCONT */
  bad = gst_buffer_copy_deep (ct);
  gst_buffer_map (bad, &map, GST_MAP_WRITE);
  map.data[20] ^= 1;
  gst_buffer_unmap (bad, &map);
  gst_harness_push (dec, gst_buffer_ref (bad));
  fail_unless_equals_int (count_key_unit_requests (dec), 1);
  /* rate-limited */
  gst_harness_push (dec, gst_buffer_ref (bad));
  fail_unless_equals_int (count_key_unit_requests (dec), 0);
  gst_harness_push (dec, gst_buffer_ref (ct));
  out = gst_harness_pull (dec);
  fail_unless (GST_BUFFER_FLAG_IS_SET (out, GST_BUFFER_FLAG_DISCONT));
  gst_buffer_unref (out);
  gst_harness_push (dec, gst_buffer_ref (ct));
  out = gst_harness_pull (dec);
  fail_if (GST_BUFFER_FLAG_IS_SET (out, GST_BUFFER_FLAG_DISCONT));
  gst_buffer_unref (out);
  /* after the interval, the next drop asks again */
  g_usleep (600 * 1000);
  gst_harness_push (dec, gst_buffer_ref (bad));
  fail_unless_equals_int (count_key_unit_requests (dec), 1);
  gst_buffer_unref (bad);
  gst_buffer_unref (ct);

  /* encryptor: no key at the selected index, then frames flow again */
  count_key_unit_requests (enc);
  g_object_set (enc->element, "key-index", 3, NULL);
  gst_harness_push (enc, gst_buffer_new_memdup (frame, sizeof (frame)));
  fail_unless_equals_int (gst_harness_buffers_in_queue (enc), 0);
  fail_unless_equals_int (count_key_unit_requests (enc), 0);
  g_object_set (enc->element, "key", KEY_HEX, NULL);
  ct = gst_buffer_new_memdup (frame, sizeof (frame));
  GST_BUFFER_FLAG_SET (ct, GST_BUFFER_FLAG_DELTA_UNIT);
  fail_unless_equals_int (gst_harness_push (enc, ct), GST_FLOW_OK);
  ct = gst_harness_pull (enc);
  fail_unless (GST_BUFFER_FLAG_IS_SET (ct, GST_BUFFER_FLAG_DISCONT));
  gst_buffer_unref (ct);
  fail_unless_equals_int (count_key_unit_requests (enc), 1);
  gst_harness_teardown (enc);
  gst_harness_teardown (dec);

  /* audio: DISCONT, but no key frame request */
  dec = gst_harness_new ("matrixrtcframedec");
  g_object_set (dec->element, "key", KEY_HEX, NULL);
  gst_harness_set_src_caps_str (dec, "audio/x-opus");
  count_key_unit_requests (dec);
  gst_harness_push (dec, gst_buffer_new_memdup (frame, sizeof (frame)));
  fail_unless_equals_int (count_key_unit_requests (dec), 0);
  gst_harness_teardown (dec);
}

GST_END_TEST;

typedef struct
{
  GstHarness *dec;
  GstBuffer *bad;
  gint64 push_us;
  gint done;
} RatchetPush;

static gpointer
push_bad_frame (gpointer data)
{
  RatchetPush *rp = data;
  gint64 start = g_get_monotonic_time ();

  gst_harness_push (rp->dec, rp->bad);
  rp->push_us = g_get_monotonic_time () - start;
  g_atomic_int_set (&rp->done, 1);
  return NULL;
}

/* A frame that fails in the shared-key (PBKDF2) mode with a ratchet window
 * derives a long PBKDF2 chain (12 derivations here); set-key and stats must
 * not wait for it (review finding 3: they did, for the whole chain). */
GST_START_TEST (test_pbkdf2_ratchet_latency)
{
  GstHarness *dec = gst_harness_new ("matrixrtcframedec");
  GBytes *material = g_bytes_new_static (key_b, 16);
  RatchetPush rp = { dec, NULL, 0, 0 };
  guint8 garbage[60];
  gint64 max_stats = 0, max_set_key = 0, t, bound;
  guint calls = 0;
  GThread *thread;

  g_object_set (dec->element, "ratchet-window", 6, "failure-tolerance", -1,
      "passphrase", "shared secret", NULL);
  /* set-key itself derives with HKDF: what is measured is the wait */
  g_object_set (dec->element, "key-derivation", 0, NULL);
  gst_harness_set_src_caps_str (dec, "audio/x-opus");
  memset (garbage, 0x42, sizeof (garbage));
  garbage[58] = 12;
  garbage[59] = 0;
  rp.bad = gst_buffer_new_memdup (garbage, sizeof (garbage));
  thread = g_thread_new ("push", push_bad_frame, &rp);
  g_usleep (10 * 1000);
  while (!g_atomic_int_get (&rp.done)) {
    GstStructure *stats;
    gboolean ok;

    t = g_get_monotonic_time ();
    g_object_get (dec->element, "stats", &stats, NULL);
    gst_structure_free (stats);
    max_stats = MAX (max_stats, g_get_monotonic_time () - t);
    t = g_get_monotonic_time ();
    g_signal_emit_by_name (dec->element, "set-key", 5, material, &ok);
    fail_unless (ok);
    max_set_key = MAX (max_set_key, g_get_monotonic_time () - t);
    calls++;
    g_usleep (1000);
  }
  g_thread_join (thread);
  g_print ("PBKDF2 ratchet chain (12 derivations) took %" G_GINT64_FORMAT
           " ms; meanwhile %u calls, longest stats %" G_GINT64_FORMAT
           " us, longest set-key %" G_GINT64_FORMAT " us\n",
      rp.push_us / 1000, calls, max_stats, max_set_key);
  fail_unless_equals_int (gst_harness_buffers_received (dec), 0);
  /* generous bounds (they take microseconds; sanitizers slow everything
   * down, the chain most): blocked, they would take as long as the chain */
  bound = MAX (100 * 1000, rp.push_us / 3);
  fail_unless (
      max_stats < bound, "stats took %" G_GINT64_FORMAT " us", max_stats);
  fail_unless (
      max_set_key < bound, "set-key took %" G_GINT64_FORMAT " us", max_set_key);
  fail_unless (calls >= 2);
  g_bytes_unref (material);
  gst_harness_teardown (dec);
}

GST_END_TEST;

/* The 2x2 key frame's SPS, PPS and IDR slice (real NAL units) */
#define SPS "00000001" FC_TEST_SIF_H264_SPS_HEX
#define PPS "00000001" FC_TEST_SIF_H264_PPS_HEX
#define IDR "00000001" FC_TEST_SIF_H264_IDR_HEX

/* Zero-padded and leading-zero Annex-B access units through encrypt -> pay
 * -> depay -> decrypt (review finding 1): all decrypt, to the access unit
 * as the depayloader rebuilds it. */
GST_START_TEST (test_rtp_h264_zero_padding)
{
  const gchar *frames[] = {
    SPS PPS IDR,
    /* one extra zero after the SPS */
    SPS "00" PPS IDR,
    /* one leading zero */
    "00" SPS PPS IDR,
    /* leading zeros, 3-byte start codes, zeros after the PPS */
    "0000"
    "000001" FC_TEST_SIF_H264_SPS_HEX "000001" FC_TEST_SIF_H264_PPS_HEX
    "0000000000" IDR,
  };
  /* what rtph264depay rebuilds */
  const gchar *expected[] = {
    SPS PPS IDR,
    SPS "00" PPS IDR,
    SPS PPS IDR,
    SPS PPS "0000000000" IDR,
  };
  GstHarness *h = gst_harness_new_parse (
      "matrixrtcframeenc key=" KEY_HEX " ! matrixrtch264pay mtu=60 ! "
      "rtph264depay ! video/x-h264,stream-format=byte-stream,alignment=au ! "
      "matrixrtcframedec name=dec key=" KEY_HEX);
  GstElement *dec;
  guint i;

  gst_harness_set_src_caps_str (
      h, "video/x-h264,stream-format=byte-stream,alignment=au");
  for (i = 0; i < G_N_ELEMENTS (frames); i++) {
    GstBuffer *in = buffer_of_hex (frames[i]), *out;
    GBytes *want = fc_hex_decode (expected[i]);

    GST_BUFFER_PTS (in) = i * GST_SECOND / 30;
    GST_BUFFER_DTS (in) = GST_BUFFER_PTS (in);
    fail_unless_equals_int (gst_harness_push (h, in), GST_FLOW_OK);
    out = gst_harness_pull (h);
    fail_unless (out != NULL, "frame %u lost", i);
    assert_buffer_equals (out, want);
    gst_buffer_unref (out);
    g_bytes_unref (want);
  }
  dec = gst_bin_get_by_name (GST_BIN (h->element), "dec");
  fail_unless_equals_uint64 (stats_u64 (dec, "frames"), G_N_ELEMENTS (frames));
  fail_unless_equals_uint64 (stats_u64 (dec, "failures"), 0);
  gst_object_unref (dec);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* What the SFU sees of the RTP packets. */
typedef struct
{
  guint packets;
  guint frames;
  guint key_frames;
  guint idr_nals;
  guint sps_nals;
  gint last_picture_id;
} RtpSeen;

/* VP8: every descriptor valid (X, I, M, 15-bit PictureID incrementing per
 * frame; S=1 PID=0 on frame starts) and key frames visible (P bit clear and
 * the 9d 01 2a start code right after the descriptor). */
static GstPadProbeReturn
check_vp8_rtp (GstPad *pad, GstPadProbeInfo *info, RtpSeen *seen)
{
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  guint8 *p;
  guint len, picture_id;

  fail_unless (gst_rtp_buffer_map (
      GST_PAD_PROBE_INFO_BUFFER (info), GST_MAP_READ, &rtp));
  p = gst_rtp_buffer_get_payload (&rtp);
  len = gst_rtp_buffer_get_payload_len (&rtp);
  fail_unless (len > 4);
  fail_unless (gst_rtp_buffer_get_packet_len (&rtp) <= 300);
  fail_unless_equals_int (p[0] & 0x80, 0x80); /* X */
  fail_unless_equals_int (p[0] & 0x0f, 0);    /* PID 0 */
  fail_unless_equals_int (p[1] & 0x80, 0x80); /* I */
  fail_unless_equals_int (p[2] & 0x80, 0x80); /* M: 15-bit PictureID */
  picture_id = ((p[2] & 0x7f) << 8) | p[3];
  seen->packets++;
  if (p[0] & 0x10) {
    if (seen->last_picture_id >= 0)
      fail_unless_equals_int (picture_id, (seen->last_picture_id + 1) & 0x7fff);
    seen->last_picture_id = picture_id;
    seen->frames++;
    if ((p[4] & 0x01) == 0) {
      fail_unless (len >= 4 + 10);
      fail_unless (p[7] == 0x9d && p[8] == 0x01 && p[9] == 0x2a);
      seen->key_frames++;
    }
  } else {
    fail_unless_equals_int (picture_id, seen->last_picture_id);
  }
  gst_rtp_buffer_unmap (&rtp);
  return GST_PAD_PROBE_OK;
}

/* VP9: descriptor valid (I, M, 15-bit PictureID incrementing per frame, B
 * on the first packet, E on the last = marker) and key frames visible (P
 * clear on the frame). */
static GstPadProbeReturn
check_vp9_rtp (GstPad *pad, GstPadProbeInfo *info, RtpSeen *seen)
{
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  guint8 *p;
  guint picture_id;

  fail_unless (gst_rtp_buffer_map (
      GST_PAD_PROBE_INFO_BUFFER (info), GST_MAP_READ, &rtp));
  p = gst_rtp_buffer_get_payload (&rtp);
  fail_unless (gst_rtp_buffer_get_payload_len (&rtp) > 3);
  fail_unless (gst_rtp_buffer_get_packet_len (&rtp) <= 300);
  fail_unless_equals_int (p[0] & 0x80, 0x80); /* I */
  fail_unless_equals_int (p[0] & 0x33, 0);    /* L, F, V, Z */
  fail_unless_equals_int (p[1] & 0x80, 0x80); /* M */
  fail_unless_equals_int (!!(p[0] & 0x04), gst_rtp_buffer_get_marker (&rtp));
  picture_id = ((p[1] & 0x7f) << 8) | p[2];
  seen->packets++;
  if (p[0] & 0x08) {
    if (seen->last_picture_id >= 0)
      fail_unless_equals_int (picture_id, (seen->last_picture_id + 1) & 0x7fff);
    seen->last_picture_id = picture_id;
    seen->frames++;
    if ((p[0] & 0x40) == 0)
      seen->key_frames++;
  } else {
    fail_unless_equals_int (picture_id, seen->last_picture_id);
  }
  gst_rtp_buffer_unmap (&rtp);
  return GST_PAD_PROBE_OK;
}

/* H.264: SPS and IDR NAL units visible in single NAL and FU-A packets. */
static GstPadProbeReturn
check_h264_rtp (GstPad *pad, GstPadProbeInfo *info, RtpSeen *seen)
{
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  guint8 *p;
  guint type;

  fail_unless (gst_rtp_buffer_map (
      GST_PAD_PROBE_INFO_BUFFER (info), GST_MAP_READ, &rtp));
  p = gst_rtp_buffer_get_payload (&rtp);
  fail_unless (gst_rtp_buffer_get_packet_len (&rtp) <= 300);
  seen->packets++;
  type = p[0] & 0x1f;
  if (type == 28) {
    if (p[1] & 0x80)
      type = p[1] & 0x1f;
    else
      type = 0;
  }
  fail_unless (type < 24, "unexpected packet type %u", type);
  if (type == 5)
    seen->idr_nals++;
  if (type == 7)
    seen->sps_nals++;
  if (gst_rtp_buffer_get_marker (&rtp))
    seen->frames++;
  gst_rtp_buffer_unmap (&rtp);
  return GST_PAD_PROBE_OK;
}

/* encrypt -> pay -> depay -> decrypt -> decode, VP8 with matrixrtcvp8pay */
GST_START_TEST (test_rtp_vp8)
{
  RtpSeen seen = { 0, 0, 0, 0, 0, -1 };

  run_roundtrip_full (RAW_VIDEO " ! vp8enc deadline=1 keyframe-max-dist=10 "
                                "target-bitrate=2000000",
      "vp8dec", 30, "matrixrtcvp8pay name=pay mtu=300 ! rtpvp8depay", NULL,
      (GstPadProbeCallback)check_vp8_rtp, &seen);
  GST_INFO ("%u packets, %u frames, %u key frames", seen.packets, seen.frames,
      seen.key_frames);
  fail_unless_equals_int (seen.frames, 30);
  fail_unless (seen.packets > seen.frames);
  fail_unless_equals_int (seen.key_frames, 3);
}

GST_END_TEST;

/* VP9 with matrixrtcvp9pay (no VP9 byte is clear) */
GST_START_TEST (test_rtp_vp9)
{
  RtpSeen seen = { 0, 0, 0, 0, 0, -1 };

  run_roundtrip_full (RAW_VIDEO " ! vp9enc deadline=1 keyframe-max-dist=10 "
                                "target-bitrate=2000000",
      "vp9dec", 30, "matrixrtcvp9pay name=pay mtu=300 ! rtpvp9depay", NULL,
      (GstPadProbeCallback)check_vp9_rtp, &seen);
  GST_INFO ("%u packets, %u frames, %u key frames", seen.packets, seen.frames,
      seen.key_frames);
  fail_unless_equals_int (seen.frames, 30);
  fail_unless (seen.packets > seen.frames);
  fail_unless_equals_int (seen.key_frames, 3);
}

GST_END_TEST;

/* H.264 with matrixrtch264pay: key index 0 ends every frame in 0x00 */
GST_START_TEST (test_rtp_h264)
{
  RtpSeen seen = { 0, 0, 0, 0, 0, -1 };

  run_roundtrip_full (RAW_VIDEO
      " ! openh264enc gop-size=10 ! h264parse ! "
      "video/x-h264,stream-format=byte-stream,alignment=au",
      "avdec_h264", 30,
      "matrixrtch264pay name=pay mtu=300 ! rtph264depay ! "
      "video/x-h264,stream-format=byte-stream,alignment=au",
      NULL, (GstPadProbeCallback)check_h264_rtp, &seen);
  GST_INFO ("%u packets, %u frames, %u IDR, %u SPS", seen.packets, seen.frames,
      seen.idr_nals, seen.sps_nals);
  fail_unless_equals_int (seen.frames, 30);
  fail_unless (seen.idr_nals >= 3);
  fail_unless (seen.sps_nals >= 1);
}

GST_END_TEST;

GST_START_TEST (test_rtp_h265)
{
  run_roundtrip_full (
      "videotestsrc num-buffers=12 pattern=ball ! "
      "video/x-raw,format=I420,width=160,height=128,framerate=30/1 ! "
      "x265enc speed-preset=ultrafast tune=zerolatency key-int-max=6 ! "
      "h265parse ! video/x-h265,stream-format=byte-stream,alignment=au",
      "avdec_h265", 12,
      "matrixrtch265pay name=pay mtu=300 ! rtph265depay ! "
      "video/x-h265,stream-format=byte-stream,alignment=au",
      NULL, NULL, NULL);
}

GST_END_TEST;

/* Opus: the stock payloader does not parse frames */
GST_START_TEST (test_rtp_opus)
{
  run_roundtrip_full ("audiotestsrc num-buffers=50 samplesperbuffer=960 ! "
                      "audio/x-raw,rate=48000,channels=1 ! opusenc",
      "opusdec", 40, "rtpopuspay name=pay ! rtpopusdepay",
      "rtpopuspay ! rtpopusdepay", NULL, NULL);
}

GST_END_TEST;

/* The stock payloaders fail on encrypted frames, which is why the ones
 * above exist: rtpvp8pay (and rtpvp9pay) error out, rtph264pay (and
 * rtph265pay) lose key index 0. */
GST_START_TEST (test_rtp_stock_payloaders_fail)
{
  GstElement *pipeline;
  GstBus *bus;
  GstMessage *msg;
  GstElement *dec;
  GstStructure *stats;
  guint64 frames = 0;

  pipeline = gst_parse_launch (RAW_VIDEO " ! vp8enc deadline=1 ! "
                                         "matrixrtcframeenc key=" KEY_HEX
                                         " ! rtpvp8pay ! fakesink",
      NULL);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  bus = gst_element_get_bus (pipeline);
  msg = gst_bus_timed_pop_filtered (
      bus, 60 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  fail_unless_equals_int (GST_MESSAGE_TYPE (msg), GST_MESSAGE_ERROR);
  gst_message_unref (msg);
  gst_object_unref (bus);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);

  pipeline = gst_parse_launch (RAW_VIDEO
      " ! openh264enc ! h264parse ! "
      "video/x-h264,stream-format=byte-stream,alignment=au ! "
      "matrixrtcframeenc key=" KEY_HEX " ! rtph264pay ! rtph264depay ! "
      "video/x-h264,stream-format=byte-stream,alignment=au ! "
      "matrixrtcframedec name=dec key=" KEY_HEX " ! fakesink",
      NULL);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  bus = gst_element_get_bus (pipeline);
  msg = gst_bus_timed_pop_filtered (
      bus, 60 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  gst_message_unref (msg);
  gst_object_unref (bus);
  dec = gst_bin_get_by_name (GST_BIN (pipeline), "dec");
  g_object_get (dec, "stats", &stats, NULL);
  gst_structure_get_uint64 (stats, "frames", &frames);
  /* at most the frame flushed at EOS decrypts */
  fail_unless (frames <= 1);
  gst_structure_free (stats);
  gst_object_unref (dec);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
}

GST_END_TEST;

static Suite *
matrixrtcframecrypto_suite (void)
{
  Suite *s = suite_create ("matrixrtcframecrypto");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_kat_decrypt);
  tcase_add_test (tc, test_kat_encrypt_layout);
  tcase_add_test (tc, test_roundtrip_vp8);
  tcase_add_test (tc, test_roundtrip_vp9);
  tcase_add_test (tc, test_roundtrip_h264);
  tcase_add_test (tc, test_roundtrip_h265);
  tcase_add_test (tc, test_roundtrip_opus);
  tcase_add_test (tc, test_bad_frames);
  tcase_add_test (tc, test_failure_tolerance);
  tcase_add_test (tc, test_key_change_and_ratchet);
  tcase_add_test (tc, test_set_key_from_thread);
  tcase_add_test (tc, test_properties);
  tcase_add_test (tc, test_report_limit);
  tcase_add_test (tc, test_drop_recovery);
  tcase_add_test (tc, test_pbkdf2_ratchet_latency);
  tcase_add_test (tc, test_rtp_vp8);
  tcase_add_test (tc, test_rtp_vp9);
  tcase_add_test (tc, test_rtp_h264);
  tcase_add_test (tc, test_rtp_h265);
  tcase_add_test (tc, test_rtp_h264_zero_padding);
  tcase_add_test (tc, test_rtp_opus);
  tcase_add_test (tc, test_rtp_stock_payloaders_fail);
  return s;
}

GST_CHECK_MAIN (matrixrtcframecrypto);
