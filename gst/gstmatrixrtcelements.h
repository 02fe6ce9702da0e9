/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __GST_MATRIXRTC_ELEMENTS_H__
#define __GST_MATRIXRTC_ELEMENTS_H__

#include <gst/gst.h>

G_BEGIN_DECLS

/* One GST_ELEMENT_REGISTER_DECLARE per element, as each element lands. */
GST_ELEMENT_REGISTER_DECLARE (matrixrtcframeenc);
GST_ELEMENT_REGISTER_DECLARE (matrixrtcframedec);
GST_ELEMENT_REGISTER_DECLARE (matrixrtcvp8pay);
GST_ELEMENT_REGISTER_DECLARE (matrixrtcvp9pay);
GST_ELEMENT_REGISTER_DECLARE (matrixrtch264pay);
GST_ELEMENT_REGISTER_DECLARE (matrixrtch265pay);
GST_ELEMENT_REGISTER_DECLARE (matrixrtcbin);
GST_ELEMENT_REGISTER_DECLARE (matrixrtcsrc);
GST_ELEMENT_REGISTER_DECLARE (matrixrtcsink);

G_END_DECLS

#endif /* __GST_MATRIXRTC_ELEMENTS_H__ */
