package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sessionkit/sessionkit/cmd/sessionkit/internal/strategy"
	"github.com/sessionkit/sessionkit/session"
	"github.com/sessionkit/sessionkit/token"
)

const keysAbout = `
Creates, rotates and exports key-ring files for --strategy token (see
package token):

  sessionkit keys new FILE      a new ring with one key; fails if FILE exists
  sessionkit keys rotate FILE   a new key, published at once, that starts to
                                sign after --activate-in; the previous key is
                                retired then
  sessionkit keys export FILE   what another service needs to verify the
                                ring's JWTs, as a JSON Web Key Set on stdout:
                                the EdDSA and ES256 public keys (the set
                                serve publishes at /.well-known/jwks.json);
                                with --hs256-secret, the HS256 secrets too

A rotation has two phases, so that no node ever meets a token of a key it
lacks. First every node takes up the new file (serve re-reads it every
--keys-reload, 5s by default, and on SIGHUP) and from then accepts the new
key's tokens, while all nodes, with the new file or not, keep signing with
the previous key. At the activation, --activate-in after the rotation, every
node that has the file switches to the new key by itself (with no re-read).
The default, 10s, is twice serve's default --keys-reload; make it longer than
the slowest node takes to see the file (and, with --token-format jwt, than
the 5 minutes other services may cache /.well-known/jwks.json). 0 activates
at once: nodes still on the old file then refuse the new key's tokens until
they re-read it.

A retired key only verifies tokens issued before it was retired, and rotate
drops it once --keep has passed (the longest lifetime of a token), so
rotating logs nobody out. Files are written with mode 0600, atomically (a
reader sees the old ring or the new one). They hold secrets: never commit
them.

Algorithms: XC20P (the sealed cookie format, default), EdDSA, ES256 or HS256
(signed JWTs for other services, --token-format jwt; EdDSA and ES256 public
keys are served at /.well-known/jwks.json). An HS256 token is verified
with the secret that signs it: anyone who can verify can also mint tokens
for any user, so export it (keys export --hs256-secret) only to a service
trusted as much as the nodes, and prefer EdDSA when other services verify.`

// defaultActivateIn is the default of keys rotate --activate-in: twice
// serve's default --keys-reload, so that every node has re-read the ring
// file once, with a period to spare, before the new key signs.
const defaultActivateIn = 2 * strategy.DefaultKeysReload

// runKeys is "sessionkit keys new|rotate FILE".
func runKeys(ctx context.Context, s *sys, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(s.stderr, "sessionkit keys: want 'new FILE', 'rotate FILE' or 'export FILE' (see 'sessionkit keys --help')")
		return exitUsage
	}
	sub := args[0]
	switch sub {
	case "-h", "-help", "--help":
		sub, args = "new|rotate|export", []string{"", "--help"}
	case "new", "rotate":
	case "export":
		return runKeysExport(s, args[1:])
	default:
		fmt.Fprintf(s.stderr, "sessionkit keys: unknown subcommand %q; want new, rotate or export (see 'sessionkit keys --help')\n", args[0])
		return exitUsage
	}
	var alg string
	var keep, activateIn time.Duration
	f := newFlagSet("keys " + sub)
	f.args, f.nargs = "FILE", 1
	defAlg := string(token.XC20P)
	if sub != "new" {
		defAlg = ""
	}
	algs := make([]string, len(token.Algs()))
	for i, a := range token.Algs() {
		algs[i] = string(a)
	}
	f.String(&alg, "alg", defAlg, "`algorithm` of the new key: "+strings.Join(algs, ", ")+
		map[bool]string{true: "\n        (keys rotate: the current key's by default; keys new: XC20P)", false: ""}[sub != "new"])
	if sub != "new" {
		f.Duration(&keep, "keep", session.DefaultRememberLifetime,
			"drop keys retired more than this `duration` ago: at least the longest\n        token lifetime (--lifetime of serve, or the remember-me lifetime)")
	}
	if sub != "new" {
		f.Duration(&activateIn, "activate-in", defaultActivateIn,
			"publish the new key at once and let it sign after this `duration`; the\n"+
				"        default is twice serve's default --keys-reload, so that every node has\n"+
				"        the new file first; 0: sign with it at once")
	}
	if code, ok := f.parse(s, args[1:], keysAbout); !ok {
		return code
	}
	if alg != "" && !slices.Contains(algs, alg) {
		return f.invalid(s, "alg", alg, "want one of "+strings.Join(algs, ", "))
	}
	if sub == "rotate" && keep <= 0 {
		return f.invalid(s, "keep", keep.String(), "must be positive")
	}
	if sub == "rotate" && activateIn < 0 {
		return f.invalid(s, "activate-in", activateIn.String(), "must be 0 (at once) or positive")
	}
	path := f.rest[0]
	fail := func(err error) int {
		fmt.Fprintf(s.stderr, "sessionkit keys %s: %v\n", sub, err)
		return exitError
	}
	now := time.Now()
	if sub == "new" {
		k, err := token.NewKey(token.Alg(alg), now)
		if err != nil {
			return fail(err)
		}
		r, err := token.NewRing(k)
		if err != nil {
			return fail(err)
		}
		if err := token.WriteRingFile(path, r, true); err != nil {
			return fail(err)
		}
		fmt.Fprintf(s.stdout, "sessionkit keys new: wrote %s with key %s (%s)\n", path, k.ID, k.Alg)
		return exitOK
	}
	r, err := token.ReadRingFile(path)
	if err != nil {
		return fail(err)
	}
	old := r.CurrentAt(now)
	nr, err := r.RotateAt(token.Alg(alg), now, now.Add(activateIn), keep)
	if err != nil {
		return fail(err)
	}
	if err := token.WriteRingFile(path, nr, false); err != nil {
		return fail(err)
	}
	cur := nr.Current()
	at := cur.Created.Format(time.RFC3339)
	var msg string
	if activateIn == 0 {
		msg = fmt.Sprintf("sessionkit keys rotate: wrote %s; new key %s (%s) signs from now (%s)", path, cur.ID, cur.Alg, at)
		if old != nil {
			msg += fmt.Sprintf(", retired %s", old.ID)
		}
	} else {
		msg = fmt.Sprintf("sessionkit keys rotate: wrote %s; new key %s (%s) published, signs from %s (in %v)",
			path, cur.ID, cur.Alg, at, activateIn)
		if old != nil {
			msg += fmt.Sprintf(", when %s is retired; every node must have re-read %s by then", old.ID, path)
		}
	}
	if dropped := len(r.Keys()) + 1 - len(nr.Keys()); dropped > 0 {
		msg += fmt.Sprintf("; dropped %d key(s) retired over %v ago", dropped, keep)
	}
	fmt.Fprintln(s.stdout, msg)
	return exitOK
}

// runKeysExport is "sessionkit keys export [--hs256-secret] FILE".
func runKeysExport(s *sys, args []string) int {
	var secrets bool
	f := newFlagSet("keys export")
	f.args, f.nargs = "FILE", 1
	f.Bool(&secrets, "hs256-secret", false, "also export the ring's HS256 secrets (anyone who has them can mint\n"+
		"        sessions of every user: only for a service trusted as much as the nodes)")
	if code, ok := f.parse(s, args, keysAbout); !ok {
		return code
	}
	path := f.rest[0]
	r, err := token.ReadRingFile(path)
	if err != nil {
		fmt.Fprintf(s.stderr, "sessionkit keys export: %v\n", err)
		return exitError
	}
	counts := map[token.Alg]int{}
	for _, k := range r.Keys() {
		counts[k.Alg]++
	}
	out, err := r.JWKS()
	if secrets {
		out, err = r.JWKSWithSecrets()
	}
	if err != nil {
		fmt.Fprintf(s.stderr, "sessionkit keys export: %v\n", err)
		return exitError
	}
	public := counts[token.EdDSA] + counts[token.ES256]
	switch {
	case secrets && counts[token.HS256] > 0:
		fmt.Fprintf(s.stderr, "sessionkit keys export: warning: the output holds %d HS256 secret(s): whoever has it can "+
			"mint sessions of every user; send it only to a service trusted as much as the nodes, over a private channel\n",
			counts[token.HS256])
	case counts[token.HS256] > 0:
		fmt.Fprintf(s.stderr, "sessionkit keys export: %s has %d HS256 key(s), not exported: HS256 tokens verify "+
			"only with the shared secret (--hs256-secret exports it)\n", path, counts[token.HS256])
	}
	if public+counts[token.HS256]*btoi(secrets) == 0 {
		fmt.Fprintf(s.stderr, "sessionkit keys export: %s has no key another service can verify with (its keys: "+
			"%s); the sealed format (XC20P) is opened only by sessionkit\n", path, algList(r))
	}
	fmt.Fprintf(s.stdout, "%s\n", out)
	return exitOK
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// algList names the algorithms of r's keys, in ring order, once each.
func algList(r *token.Ring) string {
	var algs []string
	for _, k := range r.Keys() {
		if !slices.Contains(algs, string(k.Alg)) {
			algs = append(algs, string(k.Alg))
		}
	}
	return strings.Join(algs, ", ")
}
