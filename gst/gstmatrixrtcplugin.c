/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/**
 * plugin-matrixrtc:
 *
 * Elements that make a pipeline a MatrixRTC call participant: they join a
 * call slot in a Matrix room, publish and receive media through the LiveKit
 * SFUs the members declare, and encrypt and decrypt frames end to end as
 * Element Call does.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmatrixrtcelements.h"

#include <openssl/crypto.h>

static gboolean
plugin_init (GstPlugin *plugin)
{
  gboolean ret = FALSE;

  /* OpenSSL frees its global state from an exit handler, while threads may
   * still be ending with OpenSSL state of their own (GStreamer's pool
   * threads retiring after a pipeline stopped, with DTLS and frame crypto
   * done on them): a process exiting right after a call could crash in
   * exit(). Its memory is left to the system instead. Without effect when
   * OpenSSL was set up before the plugin was loaded. */
  OPENSSL_init_crypto (OPENSSL_INIT_NO_ATEXIT, NULL);

  /* An element registered here is one that has landed; see gstmatrixrtcelements.h. */
  ret |= GST_ELEMENT_REGISTER (matrixrtcframeenc, plugin);
  ret |= GST_ELEMENT_REGISTER (matrixrtcframedec, plugin);
  ret |= GST_ELEMENT_REGISTER (matrixrtcvp8pay, plugin);
  ret |= GST_ELEMENT_REGISTER (matrixrtcvp9pay, plugin);
  ret |= GST_ELEMENT_REGISTER (matrixrtch264pay, plugin);
  ret |= GST_ELEMENT_REGISTER (matrixrtch265pay, plugin);
  ret |= GST_ELEMENT_REGISTER (matrixrtcbin, plugin);
  ret |= GST_ELEMENT_REGISTER (matrixrtcsrc, plugin);
  ret |= GST_ELEMENT_REGISTER (matrixrtcsink, plugin);
  ret = TRUE;

  return ret;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, matrixrtc,
    "MatrixRTC call participant elements (Matrix + LiveKit + end-to-end "
    "encryption)",
    plugin_init, VERSION, GST_LICENSE, GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)
