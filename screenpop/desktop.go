package screenpop

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net"
	"net/http"
	"path"
	"strings"
)

//go:embed desktop/index.html desktop/app.js desktop/style.css desktop/nats.bundle.js
var desktopFiles embed.FS

// DesktopConfig is /desktop/config.json: what the page needs before it
// can connect. With ?agent=<id> it also names that agent's inbox prefix
// and profile subject (derived from the id alone, so nothing is revealed).
type DesktopConfig struct {
	Version        int    `json:"version"`
	WSURL          string `json:"ws_url"`
	Stream         string `json:"stream"`
	WrapUpSubject  string `json:"wrapup_subject"`
	InboxPrefix    string `json:"inbox_prefix,omitempty"`
	ProfileSubject string `json:"profile_subject,omitempty"`
}

// Desktop serves the agent desktop page. Mount it at /desktop/ (with or
// without the prefix stripped); it needs no API key: agents log in to
// NATS with their own credentials from the page.
func (s *Service) Desktop() http.Handler {
	sub, _ := fs.Sub(desktopFiles, "desktop")
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		p := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/desktop")
		switch p {
		case "", "/":
			p = "/index.html"
		case "/config.json":
			s.desktopConfig(w, r)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = p
		if p == "/index.html" {
			// FileServer redirects /index.html to ./; serve it directly.
			b, err := desktopFiles.ReadFile("desktop/index.html")
			if err != nil {
				http.Error(w, "missing page", http.StatusInternalServerError)
				return
			}
			h.Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write(b)
			return
		}
		files.ServeHTTP(w, r2)
	})
}

func (s *Service) desktopConfig(w http.ResponseWriter, r *http.Request) {
	c := DesktopConfig{Version: 1, WSURL: s.wsURLFor(r), Stream: StreamName, WrapUpSubject: SubjectWrapUp}
	if agent := r.URL.Query().Get("agent"); agent != "" {
		c.InboxPrefix = InboxPrefix(agent)
		c.ProfileSubject = SubjectProfilePrefix + "." + Token(agent)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(c)
}

// wsURLFor is the websocket URL as a browser that loaded the page from
// r.Host reaches it: the configured WSURL, else the embedded listener's
// port on the page's host (a listener on a specific address keeps it).
func (s *Service) wsURLFor(r *http.Request) string {
	if s.opts.WSURL != "" {
		return s.opts.WSURL
	}
	if s.wsAddr == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(s.wsAddr)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() || host == "" {
		host = r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
	} else if ip != nil && ip.IsLoopback() {
		// Loopback listener: the page must come from this machine too;
		// keep the name the browser used if it is a loopback one.
		if h, _, err := net.SplitHostPort(r.Host); err == nil && (h == "localhost" || isLoopback(h)) {
			host = strings.Trim(h, "[]")
		}
	}
	return "ws://" + net.JoinHostPort(host, port)
}

func isLoopback(h string) bool {
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}
