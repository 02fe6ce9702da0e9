/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Loads the LiveKit E2EE test vectors (e2ee-vectors.json): from
 * $GST_MATRIXRTC_RESEARCH_DIR when it has them, else the copy vendored next to
 * this file (FC_VENDORED_VECTORS, or found from $GST_MATRIXRTC_SOURCE_ROOT). Header-only, for the unit and element
 * tests. */

#ifndef __FC_TEST_VECTORS_H__
#define __FC_TEST_VECTORS_H__

#include <json-glib/json-glib.h>
#include <string.h>

#include "fcformat.h"

/* The blank frames livekit-server injects (server-injected frames), whose
 * SHA-256 hashes livekit-client's sifPayload.ts lists: VP8 8x8 key frame,
 * H.264 2x2 key frame NAL units (SPS, PPS, IDR), Opus 80-byte silence. */
#define FC_TEST_SIF_VP8_HEX                                                    \
  "1002009d012a080008000047088585888584880202000c0d6000feffab5080"
#define FC_TEST_SIF_H264_SPS_HEX                                               \
  "6742c01f0fd91f888884000003000400000300c83c60c920"
#define FC_TEST_SIF_H264_PPS_HEX "6887cb83cb20"
#define FC_TEST_SIF_H264_IDR_HEX "6588840af2628000a7be"
/* f8 ff fe and 77 zero bytes */
#define FC_TEST_SIF_OPUS_HEX                                                   \
  "f8fffe0000000000000000000000000000000000000000000000000000000000000000000"  \
  "0000000000000000000000000000000000000000000000000000000000000000000000000"  \
  "00000000000000"

typedef struct
{
  gchar *name;
  gboolean pbkdf2;
  /* raw key material, or the passphrase's UTF-8 bytes */
  GBytes *material;
  guint key_index;
  guint ratchet_window;
  gint failure_tolerance;
  guint keyring_size;
  guint sender_ratchets;
  guint clear_bytes;
  FcCodec codec;
  const gchar *caps;
  gboolean key_frame;
  GBytes *plaintext;
  GBytes *expected_output;
  GBytes *expected_decrypted;
  GBytes *iv;
  GBytes *aes_key;
} FcTestVector;

static void
fc_test_vector_free (gpointer data)
{
  FcTestVector *v = data;

  g_free (v->name);
  g_bytes_unref (v->material);
  g_bytes_unref (v->plaintext);
  g_bytes_unref (v->expected_output);
  g_bytes_unref (v->expected_decrypted);
  g_bytes_unref (v->iv);
  g_bytes_unref (v->aes_key);
  g_free (v);
}

static GBytes *
fc_test_hex (JsonObject *o, const gchar *member)
{
  GBytes *b = fc_hex_decode (json_object_get_string_member (o, member));

  g_assert_nonnull (b);
  return b;
}

static gchar *
fc_test_vectors_path (void)
{
  const gchar *dir = g_getenv ("GST_MATRIXRTC_RESEARCH_DIR");

  if (dir) {
    gchar *path = g_build_filename (dir, "e2ee-vectors.json", NULL);

    if (g_file_test (path, G_FILE_TEST_EXISTS))
      return path;
    g_free (path);
  }
#ifdef FC_VENDORED_VECTORS
  return g_strdup (FC_VENDORED_VECTORS);
#else
  return g_build_filename (g_getenv ("GST_MATRIXRTC_SOURCE_ROOT"), "tests",
      "check", "framecrypto", "e2ee-vectors.json", NULL);
#endif
}

/* Returns a GPtrArray of FcTestVector. */
static GPtrArray *
fc_test_vectors_load (void)
{
  GPtrArray *vectors = g_ptr_array_new_with_free_func (fc_test_vector_free);
  gchar *path = fc_test_vectors_path ();
  JsonParser *parser = json_parser_new ();
  GError *error = NULL;
  JsonArray *array;
  guint i;

  if (!json_parser_load_from_file (parser, path, &error))
    g_error ("cannot load %s: %s", path, error->message);
  array = json_object_get_array_member (
      json_node_get_object (json_parser_get_root (parser)), "vectors");
  for (i = 0; i < json_array_get_length (array); i++) {
    JsonObject *o = json_array_get_object_element (array, i);
    JsonObject *opts = json_object_get_object_member (o, "keyProviderOptions");
    FcTestVector *v = g_new0 (FcTestVector, 1);
    const gchar *codec = json_object_get_string_member (o, "codec");

    v->name = g_strdup (json_object_get_string_member (o, "name"));
    v->pbkdf2 = g_str_equal (
        json_object_get_string_member (o, "derivation"), "PBKDF2");
    if (v->pbkdf2) {
      const gchar *p = json_object_get_string_member (o, "passphrase");

      v->material = g_bytes_new (p, strlen (p));
    } else {
      v->material = fc_test_hex (o, "keyMaterialHex");
    }
    v->key_index = json_object_get_int_member (o, "keyIndex");
    v->ratchet_window = json_object_get_int_member (opts, "ratchetWindowSize");
    v->failure_tolerance
        = json_object_get_int_member (opts, "failureTolerance");
    v->keyring_size = json_object_get_int_member (opts, "keyringSize");
    v->sender_ratchets = json_object_get_int_member (o, "senderRatchets");
    v->clear_bytes = json_object_get_int_member (o, "clearBytes");
    v->key_frame = !json_object_has_member (o, "frameType")
                   || g_str_equal (
                       json_object_get_string_member (o, "frameType"), "key");
    if (g_str_equal (codec, "opus")) {
      v->codec = FC_CODEC_AUDIO;
      v->caps = "audio/x-opus";
    } else if (g_str_equal (codec, "vp8")) {
      v->codec = FC_CODEC_VP8;
      v->caps = "video/x-vp8";
    } else if (g_str_equal (codec, "vp9")) {
      v->codec = FC_CODEC_VP9;
      v->caps = "video/x-vp9";
    } else if (g_str_equal (codec, "h264")) {
      v->codec = FC_CODEC_H264;
      v->caps = "video/x-h264, stream-format=byte-stream, alignment=au";
    } else if (g_str_equal (codec, "h265")) {
      v->codec = FC_CODEC_H265;
      v->caps = "video/x-h265, stream-format=byte-stream, alignment=au";
    } else {
      g_error ("vector %s: unknown codec %s", v->name, codec);
    }
    v->plaintext = fc_test_hex (o, "plaintextHex");
    v->expected_output = fc_test_hex (o, "expectedOutputHex");
    v->expected_decrypted = fc_test_hex (o, "expectedDecryptedHex");
    v->iv = fc_test_hex (o, "ivHex");
    v->aes_key = fc_test_hex (o, "aesKeyHex");
    g_ptr_array_add (vectors, v);
  }
  g_object_unref (parser);
  g_free (path);
  g_assert_cmpuint (vectors->len, >=, 5);
  return vectors;
}

#endif /* __FC_TEST_VECTORS_H__ */
