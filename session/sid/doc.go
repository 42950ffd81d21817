// Package sid implements sessionkit's session-ID format.
//
// An ID is 256 bits from crypto/rand in unpadded base64url (43 characters),
// optionally followed by '.' and a route tag naming the node that minted it,
// after Tomcat's jvmRoute:
//
//	Xq3b...43 characters...9Qw.n1
//
// A load balancer reads the tag (RouteOf) to send the user back to that
// node. The store key (Key) is a SHA-256 of the random part only, so a dump
// of a store hands out no live session ID, and re-tagging a session with
// another route keeps its data.
//
// The text form of an ID is a bearer secret. ID's String method returns it;
// its Format and LogValue methods print only the redacted form, so that
// fmt and log/slog never leak it.
//
// This package uses the standard library only and imports nothing else of
// sessionkit.
package sid
