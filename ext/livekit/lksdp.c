/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "lksdp.h"
#include "lkproto.h"

#include <json-glib/json-glib.h>
#include <stdlib.h>
#include <string.h>

void
lk_sdp_media_free (LkSdpMedia *media)
{
  if (media == NULL)
    return;
  g_free (media->kind);
  g_free (media->mid);
  g_free (media->stream_id);
  g_free (media->track_id);
  g_free (media);
}

/* "<stream> <track>" → both parts. */
static void
parse_msid_value (const gchar *value, gchar **stream_id, gchar **track_id)
{
  g_auto (GStrv) parts = g_strsplit_set (value, " \t", 3);

  if (parts[0] != NULL && *parts[0] != '\0') {
    g_free (*stream_id);
    *stream_id = g_strdup (parts[0]);
    if (parts[1] != NULL && *parts[1] != '\0') {
      g_free (*track_id);
      *track_id = g_strdup (parts[1]);
    }
  }
}

GPtrArray *
lk_sdp_list_media (const GstSDPMessage *sdp)
{
  GPtrArray *out
      = g_ptr_array_new_with_free_func ((GDestroyNotify)lk_sdp_media_free);
  guint i, j;

  for (i = 0; i < gst_sdp_message_medias_len (sdp); i++) {
    const GstSDPMedia *m = gst_sdp_message_get_media (sdp, i);
    LkSdpMedia *media = g_new0 (LkSdpMedia, 1);
    const gchar *mid = gst_sdp_media_get_attribute_val (m, "mid");
    const gchar *msid = gst_sdp_media_get_attribute_val (m, "msid");

    media->mline = i;
    media->kind = g_strdup (gst_sdp_media_get_media (m));
    media->mid = g_strdup (mid);
    if (msid != NULL) {
      parse_msid_value (msid, &media->stream_id, &media->track_id);
    } else {
      for (j = 0; j < gst_sdp_media_attributes_len (m); j++) {
        const GstSDPAttribute *a = gst_sdp_media_get_attribute (m, j);
        const gchar *p;

        if (g_strcmp0 (a->key, "ssrc") != 0 || a->value == NULL)
          continue;
        p = strstr (a->value, " msid:");
        if (p != NULL) {
          parse_msid_value (
              p + strlen (" msid:"), &media->stream_id, &media->track_id);
          break;
        }
      }
    }
    g_ptr_array_add (out, media);
  }
  return out;
}

gboolean
lk_sdp_split_stream_id (
    const gchar *stream_id, gchar **participant_sid, gchar **track_sid)
{
  const gchar *bar;

  *participant_sid = NULL;
  *track_sid = NULL;
  if (stream_id == NULL || *stream_id == '\0')
    return FALSE;
  bar = strchr (stream_id, '|');
  if (bar == NULL) {
    *participant_sid = g_strdup (stream_id);
    return TRUE;
  }
  if (bar == stream_id)
    return FALSE;
  *participant_sid = g_strndup (stream_id, bar - stream_id);
  if (bar[1] != '\0')
    *track_sid = g_strdup (bar + 1);
  return TRUE;
}

GHashTable *
lk_sdp_track_map (const GstSDPMessage *sdp)
{
  GHashTable *map
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_autoptr (GPtrArray) media = lk_sdp_list_media (sdp);
  guint i;

  for (i = 0; i < media->len; i++) {
    LkSdpMedia *m = g_ptr_array_index (media, i);
    gchar *psid = NULL, *tsid = NULL;

    if (m->mid == NULL || g_strcmp0 (m->kind, "application") == 0)
      continue;
    if (lk_sdp_split_stream_id (m->stream_id, &psid, &tsid) && tsid != NULL)
      g_hash_table_insert (map, g_strdup (m->mid), g_steal_pointer (&tsid));
    else if (m->track_id != NULL && g_str_has_prefix (m->track_id, "TR_"))
      g_hash_table_insert (map, g_strdup (m->mid), g_strdup (m->track_id));
    g_free (psid);
    g_free (tsid);
  }
  return map;
}

/* TRUE when attribute @a of key @key names payload type @pt
 * ("<pt> ..." or "<pt>"). */
static gboolean
attr_is_for_pt (const GstSDPAttribute *a, const gchar *pt)
{
  gsize len = strlen (pt);

  if (a->value == NULL || strncmp (a->value, pt, len) != 0)
    return FALSE;
  return a->value[len] == ' ' || a->value[len] == '\0';
}

guint
lk_sdp_strip_audio_red (GstSDPMessage *sdp)
{
  guint i, j, k, removed = 0;

  for (i = 0; i < gst_sdp_message_medias_len (sdp); i++) {
    GstSDPMedia *m = (GstSDPMedia *)gst_sdp_message_get_media (sdp, i);
    GPtrArray *red_pts;

    if (g_strcmp0 (gst_sdp_media_get_media (m), "audio") != 0)
      continue;
    red_pts = g_ptr_array_new_with_free_func (g_free);
    for (j = 0; j < gst_sdp_media_attributes_len (m); j++) {
      const GstSDPAttribute *a = gst_sdp_media_get_attribute (m, j);
      const gchar *sp;

      if (g_strcmp0 (a->key, "rtpmap") != 0 || a->value == NULL)
        continue;
      sp = strchr (a->value, ' ');
      if (sp != NULL && g_ascii_strncasecmp (sp + 1, "red/", 4) == 0)
        g_ptr_array_add (red_pts, g_strndup (a->value, sp - a->value));
    }
    /* Keep at least one format in the m-line. */
    if (red_pts->len == 0 || red_pts->len >= gst_sdp_media_formats_len (m)) {
      g_ptr_array_unref (red_pts);
      continue;
    }
    for (k = 0; k < red_pts->len; k++) {
      const gchar *pt = g_ptr_array_index (red_pts, k);

      for (j = gst_sdp_media_formats_len (m); j > 0; j--) {
        if (g_strcmp0 (gst_sdp_media_get_format (m, j - 1), pt) == 0)
          gst_sdp_media_remove_format (m, j - 1);
      }
      for (j = gst_sdp_media_attributes_len (m); j > 0; j--) {
        const GstSDPAttribute *a = gst_sdp_media_get_attribute (m, j - 1);

        if ((g_strcmp0 (a->key, "rtpmap") == 0
                || g_strcmp0 (a->key, "fmtp") == 0
                || g_strcmp0 (a->key, "rtcp-fb") == 0)
            && attr_is_for_pt (a, pt))
          gst_sdp_media_remove_attribute (m, j - 1);
      }
      removed++;
    }
    g_ptr_array_unref (red_pts);
  }
  return removed;
}

/* The encoding name of payload type @pt in @m (from a=rtpmap), or NULL. */
static gchar *
rtpmap_encoding (const GstSDPMedia *m, const gchar *pt)
{
  guint j;

  for (j = 0; j < gst_sdp_media_attributes_len (m); j++) {
    const GstSDPAttribute *a = gst_sdp_media_get_attribute (m, j);
    const gchar *name, *slash;

    if (g_strcmp0 (a->key, "rtpmap") != 0 || !attr_is_for_pt (a, pt))
      continue;
    name = a->value + strlen (pt);
    while (*name == ' ')
      name++;
    slash = strchr (name, '/');
    return slash ? g_strndup (name, slash - name) : g_strdup (name);
  }
  return NULL;
}

/* TRUE when the a=fmtp of payload type @pt in @m sets @param (e.g.
 * "packetization-mode=1"). */
static gboolean
fmtp_has_param (const GstSDPMedia *m, const gchar *pt, const gchar *param)
{
  guint j;

  for (j = 0; j < gst_sdp_media_attributes_len (m); j++) {
    const GstSDPAttribute *a = gst_sdp_media_get_attribute (m, j);
    g_auto (GStrv) params = NULL;
    guint k;

    if (g_strcmp0 (a->key, "fmtp") != 0 || !attr_is_for_pt (a, pt))
      continue;
    params = g_strsplit_set (a->value + strlen (pt), "; ", -1);
    for (k = 0; params[k] != NULL; k++) {
      if (g_ascii_strcasecmp (params[k], param) == 0)
        return TRUE;
    }
  }
  return FALSE;
}

/* TRUE when the profile-level-id of H.264 payload type @pt in @m names
 * the profile of @profile_level_id (its first two bytes: profile_idc and
 * the constraint flags). */
static gboolean
fmtp_same_h264_profile (
    const GstSDPMedia *m, const gchar *pt, const gchar *profile_level_id)
{
  g_autofree gchar *param = NULL;
  guint j;

  if (profile_level_id == NULL || strlen (profile_level_id) != 6)
    return FALSE;
  param = g_strdup_printf ("profile-level-id=%.4s", profile_level_id);
  for (j = 0; j < gst_sdp_media_attributes_len (m); j++) {
    const GstSDPAttribute *a = gst_sdp_media_get_attribute (m, j);
    g_auto (GStrv) params = NULL;
    guint k;

    if (g_strcmp0 (a->key, "fmtp") != 0 || !attr_is_for_pt (a, pt))
      continue;
    params = g_strsplit_set (a->value + strlen (pt), "; ", -1);
    for (k = 0; params[k] != NULL; k++) {
      if (strlen (params[k]) == strlen (param) + 2
          && g_ascii_strncasecmp (params[k], param, strlen (param)) == 0)
        return TRUE;
    }
  }
  return FALSE;
}

gboolean
lk_sdp_prefer_codec (GstSDPMessage *sdp, guint mline,
    const gchar *encoding_name, const gchar *h264_profile_level_id)
{
  GstSDPMedia *m;
  /* the codec (H.264: packetization-mode=1, of the track's profile when
   * known), H.264 mode 1 of other profiles, H.264 mode 0, the others */
  GPtrArray *ranked[4];
  gboolean h264, found = FALSE;
  guint i, r, n = 0;

  if (encoding_name == NULL || mline >= gst_sdp_message_medias_len (sdp))
    return FALSE;
  m = (GstSDPMedia *)gst_sdp_message_get_media (sdp, mline);
  h264 = g_ascii_strcasecmp (encoding_name, "H264") == 0;
  for (r = 0; r < G_N_ELEMENTS (ranked); r++)
    ranked[r] = g_ptr_array_new_with_free_func (g_free);
  for (i = 0; i < gst_sdp_media_formats_len (m); i++) {
    const gchar *pt = gst_sdp_media_get_format (m, i);
    g_autofree gchar *encoding = rtpmap_encoding (m, pt);

    if (encoding != NULL && g_ascii_strcasecmp (encoding, encoding_name) == 0) {
      found = TRUE;
      if (!h264)
        r = 0;
      else if (!fmtp_has_param (m, pt, "packetization-mode=1"))
        r = 2;
      else if (h264_profile_level_id == NULL
               || fmtp_same_h264_profile (m, pt, h264_profile_level_id))
        r = 0;
      else
        r = 1;
    } else {
      r = 3;
    }
    g_ptr_array_add (ranked[r], g_strdup (pt));
  }
  for (r = 0; r < G_N_ELEMENTS (ranked); r++) {
    for (i = 0; found && i < ranked[r]->len; i++)
      gst_sdp_media_replace_format (m, n++, g_ptr_array_index (ranked[r], i));
    g_ptr_array_unref (ranked[r]);
  }
  return found;
}

const gchar *
lk_sdp_pick_receive_codec (const gchar *const *mime_types)
{
  static const gchar *const received[] = { "VP8", "VP9", "H264" };
  guint i, j;

  for (i = 0; mime_types != NULL && mime_types[i] != NULL; i++) {
    const gchar *slash = strchr (mime_types[i], '/');
    const gchar *codec = slash ? slash + 1 : mime_types[i];

    for (j = 0; j < G_N_ELEMENTS (received); j++) {
      if (g_ascii_strcasecmp (codec, received[j]) == 0)
        return received[j];
    }
  }
  return NULL;
}

static gboolean
split_fingerprint (const gchar *value, gchar **hash_func, gchar **fingerprint)
{
  g_auto (GStrv) parts = NULL;

  if (value == NULL)
    return FALSE;
  parts = g_strsplit (value, " ", 2);
  if (parts[0] == NULL || parts[1] == NULL)
    return FALSE;
  *hash_func = g_ascii_strdown (g_strstrip (parts[0]), -1);
  *fingerprint = g_strdup (g_strstrip (parts[1]));
  return TRUE;
}

gboolean
lk_sdp_get_fingerprint (const GstSDPMessage *sdp, guint mline,
    gchar **hash_func, gchar **fingerprint)
{
  if (mline < gst_sdp_message_medias_len (sdp)) {
    const GstSDPMedia *m = gst_sdp_message_get_media (sdp, mline);

    if (split_fingerprint (gst_sdp_media_get_attribute_val (m, "fingerprint"),
            hash_func, fingerprint))
      return TRUE;
  }
  return split_fingerprint (
      gst_sdp_message_get_attribute_val (sdp, "fingerprint"), hash_func,
      fingerprint);
}

gchar *
lk_sdp_certificate_fingerprint (
    const gchar *pem, const gchar *hash_func, GError **error)
{
  static const gchar begin[] = "-----BEGIN CERTIFICATE-----";
  static const gchar end[] = "-----END CERTIFICATE-----";
  const gchar *b, *e;
  g_autofree gchar *b64 = NULL;
  g_autofree guchar *der = NULL;
  gsize der_len = 0;
  GChecksumType type;
  g_autoptr (GChecksum) checksum = NULL;
  guint8 digest[64];
  gsize digest_len = sizeof (digest);
  GString *out;
  gsize i;

  if (g_strcmp0 (hash_func, "sha-256") == 0)
    type = G_CHECKSUM_SHA256;
  else if (g_strcmp0 (hash_func, "sha-1") == 0)
    type = G_CHECKSUM_SHA1;
  else if (g_strcmp0 (hash_func, "sha-384") == 0)
    type = G_CHECKSUM_SHA384;
  else if (g_strcmp0 (hash_func, "sha-512") == 0)
    type = G_CHECKSUM_SHA512;
  else {
    g_set_error (error, LK_ERROR, LK_ERROR_DTLS_FINGERPRINT,
        "unsupported fingerprint hash function '%s'", hash_func);
    return NULL;
  }

  b = pem ? strstr (pem, begin) : NULL;
  e = b ? strstr (b, end) : NULL;
  if (e == NULL) {
    g_set_error (error, LK_ERROR, LK_ERROR_DTLS_FINGERPRINT,
        "remote certificate is not PEM");
    return NULL;
  }
  b += strlen (begin);
  b64 = g_strndup (b, e - b);
  der = g_base64_decode (g_strstrip (b64), &der_len);
  if (der == NULL || der_len < 16) {
    g_set_error (error, LK_ERROR, LK_ERROR_DTLS_FINGERPRINT,
        "remote certificate PEM does not decode");
    return NULL;
  }

  checksum = g_checksum_new (type);
  g_checksum_update (checksum, der, der_len);
  g_checksum_get_digest (checksum, digest, &digest_len);
  out = g_string_new (NULL);
  for (i = 0; i < digest_len; i++)
    g_string_append_printf (out, "%s%02X", i ? ":" : "", digest[i]);
  return g_string_free (out, FALSE);
}

gboolean
lk_sdp_fingerprint_equal (const gchar *a, const gchar *b)
{
  return a != NULL && b != NULL && g_ascii_strcasecmp (a, b) == 0;
}

void
lk_sdp_fingerprint_free (LkSdpFingerprint *fp)
{
  if (fp == NULL)
    return;
  g_free (fp->hash_func);
  g_free (fp->value);
  g_free (fp);
}

static void
add_fingerprints (GPtrArray *out, const gchar *key, const gchar *value)
{
  LkSdpFingerprint *fp;
  gchar *hash = NULL, *val = NULL;

  if (g_strcmp0 (key, "fingerprint") != 0
      || !split_fingerprint (value, &hash, &val))
    return;
  fp = g_new0 (LkSdpFingerprint, 1);
  fp->hash_func = hash;
  fp->value = val;
  g_ptr_array_add (out, fp);
}

GPtrArray *
lk_sdp_get_fingerprints (const GstSDPMessage *sdp, guint mline)
{
  GPtrArray *out = g_ptr_array_new_with_free_func (
      (GDestroyNotify)lk_sdp_fingerprint_free);
  guint i;

  if (mline < gst_sdp_message_medias_len (sdp)) {
    const GstSDPMedia *m = gst_sdp_message_get_media (sdp, mline);

    for (i = 0; i < gst_sdp_media_attributes_len (m); i++) {
      const GstSDPAttribute *a = gst_sdp_media_get_attribute (m, i);
      add_fingerprints (out, a->key, a->value);
    }
  }
  if (out->len == 0) {
    for (i = 0; i < gst_sdp_message_attributes_len (sdp); i++) {
      const GstSDPAttribute *a = gst_sdp_message_get_attribute (sdp, i);
      add_fingerprints (out, a->key, a->value);
    }
  }
  return out;
}

gboolean
lk_sdp_fingerprint_hash_accepted (const gchar *hash_func)
{
  return g_strcmp0 (hash_func, "sha-256") == 0
         || g_strcmp0 (hash_func, "sha-384") == 0
         || g_strcmp0 (hash_func, "sha-512") == 0;
}

gboolean
lk_sdp_certificate_matches (
    const gchar *pem, GPtrArray *fingerprints, GError **error)
{
  guint i, tried = 0;

  for (i = 0; fingerprints != NULL && i < fingerprints->len; i++) {
    LkSdpFingerprint *fp = g_ptr_array_index (fingerprints, i);
    g_autofree gchar *have = NULL;

    if (!lk_sdp_fingerprint_hash_accepted (fp->hash_func))
      continue;
    tried++;
    have = lk_sdp_certificate_fingerprint (pem, fp->hash_func, error);
    if (have == NULL)
      return FALSE; /* the certificate itself is unusable */
    if (lk_sdp_fingerprint_equal (have, fp->value))
      return TRUE;
  }
  if (tried == 0)
    g_set_error (error, LK_ERROR, LK_ERROR_DTLS_FINGERPRINT,
        "the SDP has no sha-256 (or stronger) fingerprint");
  else
    g_set_error (error, LK_ERROR, LK_ERROR_DTLS_FINGERPRINT,
        "remote certificate matches none of the SDP's %u fingerprint(s)",
        tried);
  return FALSE;
}

gchar *
lk_sdp_candidate_init_to_json (
    const gchar *candidate, const gchar *sdp_mid, guint sdp_mline_index)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "candidate");
  json_builder_add_string_value (b, candidate ? candidate : "");
  json_builder_set_member_name (b, "sdpMid");
  json_builder_add_string_value (b, sdp_mid ? sdp_mid : "");
  json_builder_set_member_name (b, "sdpMLineIndex");
  json_builder_add_int_value (b, sdp_mline_index);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  return json_generator_to_data (gen, NULL);
}

gboolean
lk_sdp_candidate_init_from_json (const gchar *json, gchar **candidate,
    gchar **sdp_mid, gint *sdp_mline_index, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonNode *root, *node;
  JsonObject *obj;
  const gchar *cand;

  if (json == NULL || !json_parser_load_from_data (parser, json, -1, NULL)
      || (root = json_parser_get_root (parser)) == NULL
      || !JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, LK_ERROR, LK_ERROR_PROTOCOL,
        "candidateInit is not a JSON object");
    return FALSE;
  }
  obj = json_node_get_object (root);
  node = json_object_get_member (obj, "candidate");
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_STRING) {
    g_set_error (error, LK_ERROR, LK_ERROR_PROTOCOL,
        "candidateInit lacks a candidate string");
    return FALSE;
  }
  cand = json_node_get_string (node);
  *candidate = g_strdup (cand);
  *sdp_mid = NULL;
  *sdp_mline_index = -1;
  node = json_object_get_member (obj, "sdpMid");
  if (node != NULL && JSON_NODE_HOLDS_VALUE (node)
      && json_node_get_value_type (node) == G_TYPE_STRING)
    *sdp_mid = g_strdup (json_node_get_string (node));
  node = json_object_get_member (obj, "sdpMLineIndex");
  if (node != NULL && JSON_NODE_HOLDS_VALUE (node)
      && json_node_get_value_type (node) == G_TYPE_INT64) {
    gint64 v = json_node_get_int (node);
    if (v >= 0 && v < G_MAXINT)
      *sdp_mline_index = (gint)v;
  }
  return TRUE;
}
