package screenpop_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sticky-cc/sticky/screenpop"
)

// chromium finds Debian's headless Chromium; without it the browser test
// is skipped, unless STICKY_REQUIRE_BROWSER=1 (CI) makes that a failure.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("STICKY_REQUIRE_BROWSER") == "1" {
		t.Fatal("chromium is not installed and STICKY_REQUIRE_BROWSER=1: apt-get install -y chromium")
	}
	t.Skip("chromium is not installed (apt-get install -y chromium); set STICKY_REQUIRE_BROWSER=1 to make this a failure")
	return ""
}

func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1000, 1200),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// End to end: an agent signs in to the desktop, a call rings, the card
// shows the right customer, confidence, open intents and history, and the
// wrap-up typed into the form reaches the store.
func TestDesktopInBrowser(t *testing.T) {
	ctx := browser(t)
	e, clk := newEngine(t, time.Date(2026, 1, 26, 14, 0, 0, 0, time.UTC))
	seedJane(t, e, clk)
	svc := startService(t, screenpop.Options{Calls: e})
	waitReady(t, svc)
	mux := http.NewServeMux()
	mux.Handle("/desktop/", svc.Desktop())
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)

	// A wrong password is refused on the page.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(hs.URL+"/desktop/"),
		chromedp.WaitVisible("#login"),
		chromedp.SendKeys("#agent", "alice"),
		chromedp.SendKeys("#password", "bob-secret"),
		chromedp.Click(`#login button[type=submit]`),
	); err != nil {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector("#login-error").textContent.includes("Sign-in failed")`)); err != nil {
		t.Fatalf("no sign-in error shown: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(document.querySelector("#password").value = "", true)`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys("#password", "alice-secret"),
		chromedp.Click(`#login button[type=submit]`),
	); err != nil {
		t.Fatalf("sign-in: %v", err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	err := chromedp.Do(wctx, chromedp.WaitVisible("#pops"))
	wcancel()
	if err != nil {
		msg, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#login-error").textContent + " / password length " + document.querySelector("#password").value.length + " / status " + document.querySelector("#status").textContent`))
		t.Fatalf("sign-in: %v (page: %q)", err, msg)
	}
	who := text(t, ctx, "#who")
	if !strings.Contains(who, "alice") || !strings.Contains(who, "billing") {
		t.Errorf("signed in as %q", who)
	}

	pop := ring(t, e, "call1", "alice")
	pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := svc.Pop(pctx, pop); err != nil {
		t.Fatal(err)
	}

	card := `article.card[data-call-id="call1"]`
	if err := chromedp.Do(ctx, chromedp.WaitVisible(card)); err != nil {
		t.Fatalf("no card: %v", err)
	}
	name, level := text(t, ctx, card+" .card-name"), text(t, ctx, card+" .card-level")
	confidence, recommendation := text(t, ctx, card+" .card-confidence"), text(t, ctx, card+" .card-recommendation")
	intents, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('`+card+` li.intent')).map(e => e.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	history, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('`+card+` tr.history-row')).map(e => Array.from(e.cells).map(c => c.textContent).join(' | '))`))
	if err != nil {
		t.Fatal(err)
	}
	id := pop.Context.Identity
	if name != "Jane Doe" || level != id.Level || recommendation != id.Recommendation {
		t.Errorf("card title %q · %q · %q, want Jane Doe · %s · %s", name, level, recommendation, id.Level, id.Recommendation)
	}
	if want := fmt.Sprintf("%.2f", id.Confidence); confidence != want || id.Confidence == 0 {
		t.Errorf("confidence %q, want %v", confidence, id.Confidence)
	}
	if len(intents) != 1 || intents[0] != "refund_status (2nd contact)" {
		t.Errorf("intents = %q", intents)
	}
	if len(history) != 3 ||
		!strings.Contains(history[0], "| chat | Reported a duplicate charge on her card") ||
		!strings.Contains(history[1], "| email | Asked for the refund of the duplicate charge") ||
		!strings.Contains(history[2], "| phone | (now)") {
		t.Errorf("history = %q", history)
	}

	if err := chromedp.Do(ctx,
		chromedp.SetValue(card+` select[name=intent_status]`, "resolved"),
		chromedp.SendKeys(card+` textarea[name=summary]`, "Refund confirmed on the phone, ref R-42"),
		chromedp.SendKeys(card+` textarea[name=variables]`, "refund_ref=R-42"),
	); err != nil {
		t.Fatalf("filling the wrap-up: %v", err)
	}
	if os.Getenv("STICKY_SCREENSHOT") == "1" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("desktop/screenshot.png", png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(card+` form.wrapup button[type=submit]`),
		chromedp.WaitVisible(card+` .wrapup-result.ok`),
	); err != nil {
		out, _ := chromedp.Run(ctx, chromedp.Text(card+` .wrapup-result`))
		t.Fatalf("wrap-up: %v (page says %q)", err, out)
	}

	prof, err := e.Customer(context.Background(), pop.Context.CustomerRef, 0)
	if err != nil {
		t.Fatal(err)
	}
	h := prof.History[0]
	if h.CallID != "call1" || h.Channel != "phone" || h.Summary != "Refund confirmed on the phone, ref R-42" ||
		h.Intent != "refund_status" || h.IntentStatus != "resolved" || prof.Variables["refund_ref"].Value != "R-42" {
		t.Errorf("stored interaction = %+v, refund_ref %v", h, prof.Variables["refund_ref"])
	}

}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(sel))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// config.json names the websocket the page connects to and the agent's
// own inbox and profile subject.
func TestDesktopConfig(t *testing.T) {
	e, _ := newEngine(t, time.Date(2026, 1, 26, 14, 0, 0, 0, time.UTC))
	svc := startService(t, screenpop.Options{Calls: e})
	hs := httptest.NewServer(http.StripPrefix("", svc.Desktop()))
	t.Cleanup(hs.Close)
	res, err := http.Get(hs.URL + "/desktop/config.json?agent=sip.1001")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var c screenpop.DesktopConfig
	if err := json.NewDecoder(res.Body).Decode(&c); err != nil {
		t.Fatal(err)
	}
	_, ws := svc.Addrs()
	if c.WSURL != "ws://"+ws || c.InboxPrefix != "_INBOX_sip_1001" || c.ProfileSubject != "sticky.v1.desktop.profile.sip_1001" || c.Stream != screenpop.StreamName {
		t.Errorf("config = %+v (ws %s)", c, ws)
	}
	for path, ctype := range map[string]string{"/desktop/": "text/html", "/desktop/app.js": "javascript", "/desktop/nats.bundle.js": "javascript", "/desktop/style.css": "text/css"} {
		res, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(res.Header.Get("Content-Type"), ctype) || res.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("%s: %d %q", path, res.StatusCode, res.Header.Get("Content-Type"))
		}
	}
	res, _ = http.Get(hs.URL + "/desktop/package.json")
	res.Body.Close()
	if res.StatusCode != 404 {
		t.Errorf("package.json served: %d", res.StatusCode)
	}
}
