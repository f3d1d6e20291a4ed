package gateway

import (
	"net/http"
	"slices"
	"strconv"
	"time"
)

// fastWriter is the http.ResponseWriter of the fast loop's responses:
// the head as net/http writes it (status line, the headers sorted by
// name, then Date), sent with the body's first write in one writev. A
// file's answer writes its head from the answer (writeAnswer); the
// header map, with the CORS headers in it, is made only for what asks
// for it.
type fastWriter struct {
	conn       *limitedConn
	sock       sockIO      // conn's socket
	cors       http.Header // the headers of every response
	answerHead answerHead
	stall      time.Duration
	hdr        http.Header // Header's, when hdrSet
	hdrSet     bool
	head       []byte
	keys       []string
	head1      bool // a HEAD request: no body
	status     int
	sent       bool // the head is sent
	err        error

	// renewed is when the write deadline was last set: it is moved on
	// only when it has come stall/16 closer, so a write may wait at
	// least 15/16 of StallTimeout, without a deadline call per write.
	renewed time.Time
	// date is the Date header's value and the second it is of.
	date    []byte
	dateSec int64
}

func (w *fastWriter) reset(head bool) {
	w.head1, w.status, w.sent, w.err, w.hdrSet = head, 0, false, nil, false
}

func (w *fastWriter) Header() http.Header {
	if !w.hdrSet {
		if w.hdr == nil {
			w.hdr = make(http.Header, 16)
		}
		clear(w.hdr)
		for k, v := range w.cors {
			w.hdr[k] = v
		}
		w.hdrSet = true
	}
	return w.hdr
}

func (w *fastWriter) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	w.status = code
	b := append(w.head[:0], "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(code)...)
	b = append(b, "\r\n"...)
	hdr := w.Header()
	w.keys = w.keys[:0]
	for k := range hdr {
		if k != "Date" {
			w.keys = append(w.keys, k)
		}
	}
	slices.Sort(w.keys)
	for _, k := range w.keys {
		for _, v := range hdr[k] {
			b = appendHeaderLine(b, k, v)
		}
	}
	b = append(b, "Date: "...)
	b = append(b, w.now()...)
	w.head = append(b, "\r\n\r\n"...)
}

// now is the Date header's value, net/http's format.
func (w *fastWriter) now() []byte {
	t := time.Now()
	if s := t.Unix(); s != w.dateSec || w.date == nil {
		w.date = t.UTC().AppendFormat(w.date[:0], http.TimeFormat)
		w.dateSec = s
	}
	return w.date
}

func (w *fastWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.head1 {
		return len(p), nil
	}
	w.renew()
	if w.sent {
		n, err := w.sock.write2(p, nil)
		w.err = err
		return int(n), err
	}
	w.sent = true
	n, err := w.sock.write2(w.head, p)
	w.err = err
	return int(max(n-int64(len(w.head)), 0)), err
}

// renew moves the write deadline on to StallTimeout from now, once it
// has come stall/16 closer since it was last set.
func (w *fastWriter) renew() {
	if t := time.Now(); t.Sub(w.renewed) > w.stall/16 {
		_ = w.conn.SetWriteDeadline(t.Add(w.stall))
		w.renewed = t
	}
}

// finish sends the head if no body write did (a HEAD, an empty file).
func (w *fastWriter) finish() error {
	if w.err != nil || w.sent {
		return w.err
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	w.renew()
	w.sent = true
	_, w.err = w.sock.write2(w.head, nil)
	return w.err
}
