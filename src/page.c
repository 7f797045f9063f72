/*
 * page.c - the browser page, built once per worker.
 */
#include <stdio.h>
#include <string.h>

#include "http.h"
#include "page.h"

static const char page_head[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>wsechod</title>\n<style>\n"
    "body{font:16px system-ui,sans-serif;max-width:40em;margin:2em auto;padding:0 1em}\n"
    "#log{border:1px solid #bbb;height:20em;overflow:auto;padding:.5em;white-space:pre-wrap}\n"
    "#form{margin-bottom:1em}#msg{width:70%}.out{color:#555}.in{color:#063}.empty{font-style:italic}\n"
    "</style></head><body>\n"
    "<h1>wsechod</h1>\n<p><span id=\"status\">connecting&hellip;</span>\n"
    "<button id=\"reconnect\" type=\"button\" hidden>Reconnect</button></p>\n"
    "<form id=\"form\"><input id=\"msg\" autocomplete=\"off\" placeholder=\"a message\">\n"
    "<button id=\"send\" type=\"submit\">Send</button></form>\n<div id=\"log\"></div>\n"
    "<script>\n\"use strict\";\nconst path = \"";

/*
 * An empty message is shown as "(empty message)" in italics (class empty),
 * so that its echo is seen; after a close the Reconnect button opens a new
 * WebSocket to the same URL.
 */
static const char page_tail[] =
    "\";\nconst url = (location.protocol === \"https:\" ? \"wss://\" : \"ws://\") + location.host + path;\n"
    "const log = document.getElementById(\"log\"), status = document.getElementById(\"status\");\n"
    "const again = document.getElementById(\"reconnect\");\n"
    "function add(cls, prefix, text) {\n"
    "  const line = document.createElement(\"div\");\n"
    "  line.className = text === \"\" ? cls + \" empty\" : cls;\n"
    "  line.textContent = prefix + (text === \"\" ? \"(empty message)\" : text);\n"
    "  log.appendChild(line); log.scrollTop = log.scrollHeight;\n}\n"
    "let ws;\n"
    "function connect() {\n"
    "  again.hidden = true; status.textContent = \"connecting\\u2026\";\n"
    "  ws = new WebSocket(url);\n"
    "  ws.onopen = () => { status.textContent = \"connected to \" + url; };\n"
    "  ws.onclose = (e) => { status.textContent = \"closed (\" + e.code + \")\"; again.hidden = false; };\n"
    "  ws.onmessage = (e) => add(\"in\", \"\", e.data);\n}\n"
    "again.onclick = connect;\n"
    "connect();\n"
    "document.getElementById(\"form\").onsubmit = (e) => {\n"
    "  e.preventDefault();\n"
    "  const msg = document.getElementById(\"msg\");\n"
    "  if (ws.readyState !== WebSocket.OPEN) { add(\"out\", \"\", \"(not connected)\"); return; }\n"
    "  ws.send(msg.value); add(\"out\", \"> \", msg.value); msg.value = \"\";\n};\n"
    "</script></body></html>\n";

/* The path inside a JavaScript string inside HTML: escape what could end either. */
static size_t escape_js(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char tmp[8];
        int k = (ch < 0x20 || ch == '"' || ch == '\\' || ch == '<' || ch == '>' || ch == '&' ||
                 ch == '\'') ? snprintf(tmp, sizeof tmp, "\\x%02x", ch)
                             : snprintf(tmp, sizeof tmp, "%c", ch);
        if (n + (size_t)k >= cap)
            return 0;
        memcpy(out + n, tmp, (size_t)k);
        n += (size_t)k;
    }
    return n;
}

size_t wse_page_response(char *out, size_t cap, const char *ws_path)
{
    char body[4096], path[1100];
    size_t plen = escape_js(path, sizeof path, ws_path);
    int n = snprintf(body, sizeof body, "%s%.*s%s", page_head, (int)plen, path, page_tail);

    if (n < 0 || (size_t)n >= sizeof body)
        return 0;
    return wse_http_response(out, cap, 200,
                             "Cache-Control: no-store\r\n"
                             "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; "
                             "style-src 'unsafe-inline'; connect-src 'self'\r\n",
                             "text/html; charset=utf-8", body, (size_t)n);
}
