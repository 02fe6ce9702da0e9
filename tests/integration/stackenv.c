/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#include "stackenv.h"

#include <string.h>

static GHashTable *stack_values;

static gchar *
stack_env_path (void)
{
  const gchar *path = g_getenv ("MATRIXRTC_STACK_ENV");

  if (path != NULL && *path != '\0')
    return g_strdup (path);
  return g_build_filename (
      g_get_user_cache_dir (), "gst-matrixrtc", "stack", "env", NULL);
}

gboolean
stack_env_load (GError **error)
{
  g_autofree gchar *path = stack_env_path ();
  g_autofree gchar *contents = NULL;
  g_auto (GStrv) lines = NULL;
  guint i;

  if (stack_values != NULL)
    return TRUE;

  if (!g_file_get_contents (path, &contents, NULL, error)) {
    g_prefix_error (error, "the local stack is not up (run tests/env/up): ");
    return FALSE;
  }

  stack_values
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  lines = g_strsplit (contents, "\n", -1);
  for (i = 0; lines[i] != NULL; i++) {
    const gchar *line = lines[i];
    const gchar *eq;

    if (*line == '\0' || *line == '#')
      continue;
    if (g_str_has_prefix (line, "export "))
      line += strlen ("export ");
    eq = strchr (line, '=');
    if (eq == NULL)
      continue;
    g_hash_table_insert (stack_values, g_strndup (line, eq - line),
        g_shell_unquote (eq + 1, NULL));
  }
  return TRUE;
}

const gchar *
stack_env_lookup (const gchar *key)
{
  GError *error = NULL;

  if (!stack_env_load (&error)) {
    g_clear_error (&error);
    return NULL;
  }
  return g_hash_table_lookup (stack_values, key);
}

const gchar *
stack_env_get (const gchar *key)
{
  GError *error = NULL;
  const gchar *value;

  if (!stack_env_load (&error))
    g_error ("%s", error->message);
  value = g_hash_table_lookup (stack_values, key);
  if (value == NULL)
    g_error ("the stack env file has no %s: rerun tests/env/up", key);
  return value;
}
