/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Parsing of untrusted JSON: json-glib's parser recurses without limit
 * (deep nesting exhausts the stack) and accepts more than strict JSON, so
 * every untrusted text goes through a linear pre-scan first. */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "mrtcjson.h"

#include <string.h>

GQuark
mrtc_json_error_quark (void)
{
  return g_quark_from_static_string ("mrtc-json-error-quark");
}

/**
 * mrtc_json_check_text:
 * @text: JSON text (need not be NUL-terminated if @len is given)
 * @len: length of @text or -1
 * @max_depth: the deepest nesting of arrays and objects accepted
 * @error: return location for an error
 *
 * A linear pre-scan of untrusted JSON before json-glib parses it. Refuses
 * nesting deeper than @max_depth, what json-glib accepts beyond strict JSON
 * (single-quoted strings, comments: they would hide brackets from this
 * scan) and NUL characters, raw or escaped as `\u0000` (json-glib would
 * silently cut the string there), with %MRTC_JSON_ERROR_INVALID.
 *
 * Returns: %TRUE if @text may be given to json-glib.
 */
gboolean
mrtc_json_check_text (
    const gchar *text, gssize len, guint max_depth, GError **error)
{
  gsize n = len < 0 ? strlen (text) : (gsize)len;
  gsize i;
  guint depth = 0;
  gboolean in_string = FALSE;

  for (i = 0; i < n; i++) {
    gchar c = text[i];

    if (c == '\0') {
      g_set_error (error, MRTC_JSON_ERROR, MRTC_JSON_ERROR_INVALID,
          "NUL character in JSON");
      return FALSE;
    }
    if (in_string) {
      if (c == '"') {
        in_string = FALSE;
      } else if (c == '\\' && i + 1 < n) {
        i++;
        if (text[i] == 'u' && i + 4 < n
            && strncmp (text + i + 1, "0000", 4) == 0) {
          g_set_error (error, MRTC_JSON_ERROR, MRTC_JSON_ERROR_INVALID,
              "NUL character (\\u0000) in a JSON string");
          return FALSE;
        }
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = TRUE;
        break;
      case '[':
      case '{':
        if (++depth > max_depth) {
          g_set_error (error, MRTC_JSON_ERROR, MRTC_JSON_ERROR_INVALID,
              "JSON nested deeper than %u levels", max_depth);
          return FALSE;
        }
        break;
      case ']':
      case '}':
        if (depth > 0)
          depth--;
        break;
      case '\'':
      case '/':
        g_set_error (error, MRTC_JSON_ERROR, MRTC_JSON_ERROR_INVALID,
            "not strict JSON (single quotes or comments)");
        return FALSE;
      default:
        break;
    }
  }
  return TRUE;
}

/**
 * mrtc_json_parse:
 * @text: untrusted JSON text (need not be NUL-terminated if @len is given)
 * @len: length of @text or -1
 * @max_len: the longest text accepted (%MRTC_JSON_ERROR_TOO_LARGE), 0 for
 *   no limit
 * @max_depth: the deepest nesting accepted (see mrtc_json_check_text())
 * @error: return location for an error
 *
 * Parses @text with json-glib after mrtc_json_check_text().
 *
 * Returns: (transfer full) (nullable): the root node (of any type).
 */
JsonNode *
mrtc_json_parse (const gchar *text, gssize len, gsize max_len, guint max_depth,
    GError **error)
{
  g_autoptr (JsonParser) parser = NULL;
  GError *local = NULL;
  JsonNode *root;
  gsize n;

  if (text == NULL) {
    g_set_error (error, MRTC_JSON_ERROR, MRTC_JSON_ERROR_INVALID, "no JSON");
    return NULL;
  }
  n = len < 0 ? strlen (text) : (gsize)len;
  if (max_len > 0 && n > max_len) {
    g_set_error (error, MRTC_JSON_ERROR, MRTC_JSON_ERROR_TOO_LARGE,
        "JSON of %" G_GSIZE_FORMAT " bytes is too large (limit %" G_GSIZE_FORMAT
        ")",
        n, max_len);
    return NULL;
  }
  if (!mrtc_json_check_text (text, (gssize)n, max_depth, error))
    return NULL;
  parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (parser, text, (gssize)n, &local)) {
    g_set_error (error, MRTC_JSON_ERROR, MRTC_JSON_ERROR_INVALID,
        "invalid JSON: %s", local->message);
    g_error_free (local);
    return NULL;
  }
  root = json_parser_get_root (parser);
  if (root == NULL) {
    g_set_error (error, MRTC_JSON_ERROR, MRTC_JSON_ERROR_INVALID, "empty JSON");
    return NULL;
  }
  return json_node_ref (root);
}

/**
 * mrtc_json_object_from_string:
 * @text: untrusted JSON text
 * @len: length of @text or -1
 * @max_len: the longest text accepted, 0 for no limit
 * @max_depth: the deepest nesting accepted
 * @error: return location for an error
 *
 * As mrtc_json_parse() for a text that must be a JSON object.
 *
 * Returns: (transfer full) (nullable): the object.
 */
JsonObject *
mrtc_json_object_from_string (const gchar *text, gssize len, gsize max_len,
    guint max_depth, GError **error)
{
  g_autoptr (JsonNode) root
      = mrtc_json_parse (text, len, max_len, max_depth, error);

  if (root == NULL)
    return NULL;
  if (!JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, MRTC_JSON_ERROR, MRTC_JSON_ERROR_INVALID,
        "JSON is not an object");
    return NULL;
  }
  return json_object_ref (json_node_get_object (root));
}
