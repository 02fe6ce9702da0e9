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

#include "gstmatrixrtcvpxpay.h"

#include <gst/rtp/gstrtpbuffer.h>
#include <string.h>

GstFlowReturn
gst_matrix_rtc_vpx_pay_fragment (GstRTPBasePayload *payload, GstBuffer *buffer,
    guint descriptor_len, GstMatrixRtcVpxDescriptorFunc write_descriptor,
    GstMatrixRtcVpxDeltaFunc is_delta, gint *picture_id)
{
  GstBufferList *list;
  GstMapInfo map;
  gsize offset = 0;
  guint max_chunk, id;
  gboolean delta;

  if (!gst_buffer_map (buffer, &map, GST_MAP_READ)) {
    gst_buffer_unref (buffer);
    GST_ELEMENT_ERROR (payload, RESOURCE, READ, (NULL), ("cannot map buffer"));
    return GST_FLOW_ERROR;
  }
  if (map.size == 0) {
    /* nothing to send (an empty frame has no RTP form) */
    gst_buffer_unmap (buffer, &map);
    gst_buffer_unref (buffer);
    return GST_FLOW_OK;
  }

  max_chunk = gst_rtp_buffer_calc_payload_len (
      GST_RTP_BASE_PAYLOAD_MTU (payload), 0, 0);
  if (max_chunk <= descriptor_len) {
    gst_buffer_unmap (buffer, &map);
    gst_buffer_unref (buffer);
    GST_ELEMENT_ERROR (payload, STREAM, ENCODE, (NULL), ("MTU too small"));
    return GST_FLOW_ERROR;
  }
  max_chunk -= descriptor_len;
  delta = is_delta (map.data, map.size, buffer);
  id = (guint)g_atomic_int_get (picture_id);

  list = gst_buffer_list_new_sized (map.size / max_chunk + 1);
  while (offset < map.size) {
    guint chunk = MIN (max_chunk, map.size - offset);
    GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
    GstBuffer *out;
    guint8 *p;

    out = gst_rtp_base_payload_allocate_output_buffer (
        payload, descriptor_len + chunk, 0, 0);
    gst_rtp_buffer_map (out, GST_MAP_WRITE, &rtp);
    p = gst_rtp_buffer_get_payload (&rtp);
    write_descriptor (p, offset == 0, offset + chunk == map.size, delta, id);
    memcpy (p + descriptor_len, map.data + offset, chunk);
    offset += chunk;
    gst_rtp_buffer_set_marker (&rtp, offset == map.size);
    gst_rtp_buffer_unmap (&rtp);

    GST_BUFFER_PTS (out) = GST_BUFFER_PTS (buffer);
    GST_BUFFER_DTS (out) = GST_BUFFER_DTS (buffer);
    GST_BUFFER_DURATION (out) = GST_BUFFER_DURATION (buffer);
    if (delta)
      GST_BUFFER_FLAG_SET (out, GST_BUFFER_FLAG_DELTA_UNIT);
    if (gst_buffer_list_length (list) == 0
        && GST_BUFFER_FLAG_IS_SET (buffer, GST_BUFFER_FLAG_DISCONT))
      GST_BUFFER_FLAG_SET (out, GST_BUFFER_FLAG_DISCONT);
    gst_buffer_list_add (list, out);
  }
  g_atomic_int_set (picture_id, (id + 1) & 0x7fff);
  gst_buffer_unmap (buffer, &map);
  gst_buffer_unref (buffer);
  return gst_rtp_base_payload_push_list (payload, list);
}
