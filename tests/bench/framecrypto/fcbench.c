/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Benchmark (not a test): per-frame time of matrixrtcframeenc and
 * matrixrtcframedec against bare OpenSSL EVP AES-128-GCM on the same frames
 * (60 B Opus, 1200 B, 16 KiB and 100 KiB VP8 delta frames), printed as
 * ratios from one run. Targets (issue 3): <= 1.3x bare EVP at 16 KiB and
 * <= 2 us extra per 60 B frame.
 *
 *   <build>/tests/bench/framecrypto/fcbench [seconds-per-measurement]
 *   or: meson test -C <build> --benchmark framecrypto_elements -v
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/gst.h>
#include <openssl/evp.h>
#include <string.h>

#define KEY_HEX "000102030405060708090a0b0c0d0e0f"

typedef struct
{
  const gchar *label;
  const gchar *caps;
  gsize size;
} BenchFrame;

static const BenchFrame frames[] = {
  { "60 B opus", "audio/x-opus", 60 },
  { "1200 B vp8", "video/x-vp8", 1200 },
  { "16 KiB vp8", "video/x-vp8", 16384 },
  { "100 KiB vp8", "video/x-vp8", 102400 },
};

static gdouble seconds_per_measurement = 0.5;

/* Bare EVP: the same work the element's crypto does per frame (new IV, AAD,
 * payload, tag), key schedule set up once. */
static gdouble
bench_evp (
    gboolean encrypt, const guint8 *frame, gsize size, gsize clear, guint n)
{
  static const guint8 key[16] = { 0x40, 0x86, 0xb4, 0x64, 0x10, 0x64, 0xe1,
    0xae, 0x8b, 0x63, 0xd4, 0xeb, 0x83, 0xad, 0x3e, 0x7e };
  guint8 iv[12] = { 0 }, tag[16];
  guint8 *ct = g_malloc (size);
  guint8 *out = g_malloc (size);
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new ();
  const EVP_CIPHER *cipher = EVP_aes_128_gcm ();
  gint64 start;
  guint i;
  int len;

  /* the ciphertext and tag the decrypt loop authenticates */
  memcpy (ct, frame, clear);
  EVP_CipherInit_ex (ctx, cipher, NULL, key, NULL, 1);
  EVP_EncryptInit_ex (ctx, NULL, NULL, NULL, iv);
  EVP_EncryptUpdate (ctx, NULL, &len, frame, clear);
  EVP_EncryptUpdate (ctx, ct + clear, &len, frame + clear, size - clear);
  EVP_EncryptFinal_ex (ctx, ct + clear + len, &len);
  EVP_CIPHER_CTX_ctrl (ctx, EVP_CTRL_GCM_GET_TAG, 16, tag);
  if (!encrypt)
    EVP_CipherInit_ex (ctx, cipher, NULL, key, NULL, 0);

  start = g_get_monotonic_time ();
  for (i = 0; i < n; i++) {
    if (encrypt) {
      iv[11] = i;
      EVP_EncryptInit_ex (ctx, NULL, NULL, NULL, iv);
      EVP_EncryptUpdate (ctx, NULL, &len, frame, clear);
      EVP_EncryptUpdate (ctx, out, &len, frame + clear, size - clear);
      EVP_EncryptFinal_ex (ctx, out + len, &len);
      EVP_CIPHER_CTX_ctrl (ctx, EVP_CTRL_GCM_GET_TAG, 16, tag);
    } else {
      EVP_DecryptInit_ex (ctx, NULL, NULL, NULL, iv);
      EVP_DecryptUpdate (ctx, NULL, &len, ct, clear);
      EVP_DecryptUpdate (ctx, out, &len, ct + clear, size - clear);
      EVP_CIPHER_CTX_ctrl (ctx, EVP_CTRL_GCM_SET_TAG, 16, tag);
      if (EVP_DecryptFinal_ex (ctx, out + len, &len) != 1)
        g_error ("bare EVP decryption failed");
    }
  }
  start = g_get_monotonic_time () - start;
  EVP_CIPHER_CTX_free (ctx);
  g_free (ct);
  g_free (out);
  return start * 1000.0 / n;
}

typedef struct
{
  GstPad *src;
  GstPad *sink;
  GstElement *element;
  GstBuffer *last;
  guint64 received;
} Rig;

static GstFlowReturn
rig_chain (GstPad *pad, GstObject *parent, GstBuffer *buf)
{
  Rig *rig = g_object_get_data (G_OBJECT (pad), "rig");

  rig->received++;
  gst_buffer_replace (&rig->last, buf);
  gst_buffer_unref (buf);
  return GST_FLOW_OK;
}

static void
rig_init (Rig *rig, const gchar *factory, const gchar *caps_str)
{
  GstCaps *caps = gst_caps_from_string (caps_str);
  GstSegment segment;
  GstPad *pad;

  memset (rig, 0, sizeof (*rig));
  rig->element = gst_element_factory_make (factory, NULL);
  if (rig->element == NULL)
    g_error ("%s not found: set GST_PLUGIN_PATH to the build's gst/ folder",
        factory);
  g_object_set (rig->element, "key", KEY_HEX, NULL);
  rig->src = gst_pad_new ("src", GST_PAD_SRC);
  rig->sink = gst_pad_new ("sink", GST_PAD_SINK);
  g_object_set_data (G_OBJECT (rig->sink), "rig", rig);
  gst_pad_set_chain_function (rig->sink, rig_chain);
  pad = gst_element_get_static_pad (rig->element, "sink");
  gst_pad_link (rig->src, pad);
  gst_object_unref (pad);
  pad = gst_element_get_static_pad (rig->element, "src");
  gst_pad_link (pad, rig->sink);
  gst_object_unref (pad);
  gst_pad_set_active (rig->src, TRUE);
  gst_pad_set_active (rig->sink, TRUE);
  gst_element_set_state (rig->element, GST_STATE_PLAYING);
  gst_pad_push_event (rig->src, gst_event_new_stream_start ("bench"));
  gst_pad_push_event (rig->src, gst_event_new_caps (caps));
  gst_segment_init (&segment, GST_FORMAT_TIME);
  gst_pad_push_event (rig->src, gst_event_new_segment (&segment));
  gst_caps_unref (caps);
}

static void
rig_clear (Rig *rig)
{
  gst_element_set_state (rig->element, GST_STATE_NULL);
  gst_buffer_replace (&rig->last, NULL);
  gst_object_unref (rig->element);
  gst_object_unref (rig->src);
  gst_object_unref (rig->sink);
}

static gdouble
bench_element (Rig *rig, GstBuffer *in, guint n)
{
  gint64 start;
  guint i;

  start = g_get_monotonic_time ();
  for (i = 0; i < n; i++) {
    if (gst_pad_push (rig->src, gst_buffer_ref (in)) != GST_FLOW_OK)
      g_error ("push failed");
  }
  start = g_get_monotonic_time () - start;
  if (rig->received < n)
    g_error (
        "only %" G_GUINT64_FORMAT " of %u frames came out", rig->received, n);
  return start * 1000.0 / n;
}

/* Runs @n so that one measurement takes about seconds_per_measurement. */
static guint
iterations (gdouble ns_per_frame)
{
  gdouble n = seconds_per_measurement * 1e9 / MAX (ns_per_frame, 1.0);

  return (guint)CLAMP (n, 1000, 5000000);
}

int
main (int argc, char **argv)
{
  guint f;

  gst_init (&argc, &argv);
  if (argc > 1)
    seconds_per_measurement = g_ascii_strtod (argv[1], NULL);
#ifdef BENCH_PLUGIN_DIR
  if (!g_getenv ("GST_PLUGIN_PATH") && !g_getenv ("GST_PLUGIN_PATH_1_0"))
    gst_registry_scan_path (gst_registry_get (), BENCH_PLUGIN_DIR);
#endif

  g_print ("%-12s %5s %12s %12s %7s %10s\n", "frame", "dir", "EVP ns",
      "element ns", "ratio", "extra ns");
  for (f = 0; f < G_N_ELEMENTS (frames); f++) {
    const BenchFrame *bf = &frames[f];
    gsize clear = g_str_has_prefix (bf->caps, "audio") ? 1 : 3;
    guint8 *data = g_malloc (bf->size);
    GstBuffer *plain, *encrypted;
    Rig enc, dec;
    gdouble evp, el;
    guint n, i;

    for (i = 0; i < bf->size; i++)
      data[i] = g_random_int_range (0, 256);
    data[0] = clear == 1 ? 0x78 : 0x31; /* Opus TOC, VP8 delta frame tag */
    plain = gst_buffer_new_wrapped (data, bf->size);

    rig_init (&enc, "matrixrtcframeenc", bf->caps);
    rig_init (&dec, "matrixrtcframedec", bf->caps);

    /* calibrate, warm up */
    n = iterations (bench_evp (TRUE, data, bf->size, clear, 1000));
    bench_element (&enc, plain, n / 10 + 1);
    encrypted = gst_buffer_ref (enc.last);
    bench_element (&dec, encrypted, n / 10 + 1);

    evp = bench_evp (TRUE, data, bf->size, clear, n);
    el = bench_element (&enc, plain, n);
    g_print ("%-12s %5s %12.1f %12.1f %7.2f %10.1f\n", bf->label, "enc", evp,
        el, el / evp, el - evp);
    evp = bench_evp (FALSE, data, bf->size, clear, n);
    el = bench_element (&dec, encrypted, n);
    g_print ("%-12s %5s %12.1f %12.1f %7.2f %10.1f\n", bf->label, "dec", evp,
        el, el / evp, el - evp);

    gst_buffer_unref (encrypted);
    gst_buffer_unref (plain);
    rig_clear (&enc);
    rig_clear (&dec);
  }
  return 0;
}
