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

#include <gst/check/gstcheck.h>

/* The plugin loads from the build tree, and the GStreamer plugins its
 * elements rely on at run time are installed. */
GST_START_TEST (test_plugin_loads)
{
  GstPlugin *plugin;

  plugin = gst_registry_find_plugin (gst_registry_get (), "matrixrtc");
  fail_unless (plugin != NULL, "plugin matrixrtc not found in the registry");
  fail_unless_equals_string (gst_plugin_get_name (plugin), "matrixrtc");
  fail_unless_equals_string (gst_plugin_get_version (plugin), VERSION);
  fail_unless (
      gst_plugin_is_loaded (plugin) || gst_plugin_load (plugin) != NULL);
  gst_object_unref (plugin);
}

GST_END_TEST;

GST_START_TEST (test_runtime_plugins_present)
{
  /* webrtcbin (plugins-bad), nicesrc (libnice), sctpenc, opus and vpx. */
  const gchar *factories[] = { "webrtcbin", "nicesrc", "sctpenc", "opusenc",
    "vp8enc", "rtpvp8pay", "rtpopuspay", NULL };
  guint i;

  for (i = 0; factories[i] != NULL; i++) {
    GstElementFactory *f = gst_element_factory_find (factories[i]);
    fail_unless (
        f != NULL, "element %s missing: run tests/env/install", factories[i]);
    gst_object_unref (f);
  }
}

GST_END_TEST;

static Suite *
matrixrtcplugin_suite (void)
{
  Suite *s = suite_create ("matrixrtcplugin");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_plugin_loads);
  tcase_add_test (tc, test_runtime_plugins_present);
  return s;
}

GST_CHECK_MAIN (matrixrtcplugin);
