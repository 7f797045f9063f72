/*
 * page.h - the browser page: a small self-contained HTML page (no external
 * resources) with a text box, a send button and a log, that connects to the
 * echo endpoint and shows each echo, as the original tutorial's page did.
 */
#ifndef WSE_PAGE_H
#define WSE_PAGE_H

#include <stddef.h>

/*
 * Writes the complete HTTP 200 response carrying the page, whose script
 * connects to ws_path on the host the page came from, into out.  Returns
 * its length, or 0 if cap is too small (8 KiB is always enough for a path
 * of up to 255 bytes).
 */
size_t wse_page_response(char *out, size_t cap, const char *ws_path);

#endif
