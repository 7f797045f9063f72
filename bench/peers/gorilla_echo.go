// gorilla_echo.go - Go gorilla/websocket echo peer for bench/compare.sh.
//
// Built against Debian's golang-github-gorilla-websocket-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o build/peers/gorilla_echo bench/peers/gorilla_echo.go
//
// Usage: gorilla_echo PORT [deflate]   (127.0.0.1:PORT, any path; run with
// GOMAXPROCS=1 when pinned to one core). Every message goes back unchanged,
// with its type. "deflate" (bench/deflate_compare.py) sets EnableCompression:
// permessage-deflate is accepted and every echo compressed at gorilla's
// default level (1). gorilla knows only no context takeover: it always
// answers server_no_context_takeover; client_no_context_takeover.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"strconv"

	"github.com/gorilla/websocket"
)

var upgrader = websocket.Upgrader{
	ReadBufferSize:  4096,
	WriteBufferSize: 4096,
	CheckOrigin:     func(r *http.Request) bool { return true },
}

func echo(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	for {
		mt, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		if err := c.WriteMessage(mt, msg); err != nil {
			return
		}
	}
}

func main() {
	if len(os.Args) < 2 || len(os.Args) > 3 || (len(os.Args) == 3 && os.Args[2] != "deflate") {
		fmt.Fprintln(os.Stderr, "usage: gorilla_echo PORT [deflate]")
		os.Exit(2)
	}
	upgrader.EnableCompression = len(os.Args) == 3
	port, err := strconv.Atoi(os.Args[1])
	if err != nil || port < 1 || port > 65535 {
		fmt.Fprintln(os.Stderr, "gorilla_echo: bad port")
		os.Exit(2)
	}
	http.HandleFunc("/", echo)
	log.Fatal(http.ListenAndServe(fmt.Sprintf("127.0.0.1:%d", port), nil))
}
