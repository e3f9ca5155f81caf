package natsrelay

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/eventfold/eventfold"
)

// SubjectFunc maps an event to the subject it is published on. The subject
// must lie under the relay's subject prefix (so the JetStream stream's
// subjects catch it) and be a valid NATS subject: non-empty tokens separated
// by '.', no white space, no wildcard ('*', '>'). Build tokens from event
// fields with Token, which escapes what NATS forbids.
type SubjectFunc func(prefix string, ev eventfold.Event) (string, error)

// Category returns the category of a stream id: the part before the first
// '-' ("account" for "account-42"), the whole id when it has none.
func Category(streamID string) string {
	if i := strings.IndexByte(streamID, '-'); i >= 0 {
		return streamID[:i]
	}
	return streamID
}

// Token escapes s into one NATS subject token. NATS forbids white space,
// '.', '*' and '>' inside a token (and empty tokens); those bytes, '%',
// control and invisible characters are percent-encoded (". " -> "%2E%20"),
// so distinct inputs stay distinct tokens; the empty string becomes "%".
// Everything else, non-ASCII letters included, is kept.
func Token(s string) string {
	if s == "" {
		return "%"
	}
	// Most tokens are printable ASCII with nothing to escape: return them
	// as they are, without a copy.
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '%' || c == '.' || c == '*' || c == '>' {
			return escapeToken(s)
		}
	}
	return s
}

func escapeToken(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r == utf8.RuneError || r == '%' || r == '.' || r == '*' || r == '>' || r <= ' ' ||
			unicode.IsSpace(r) || unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			_, size := utf8.DecodeRuneInString(s[i:])
			for _, c := range []byte(s[i : i+size]) {
				fmt.Fprintf(&b, "%%%02X", c)
			}
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// DefaultSubject is the default SubjectFunc: "<prefix>.<category>.<type>",
// each token escaped with Token.
func DefaultSubject(prefix string, ev eventfold.Event) (string, error) {
	return prefix + "." + Token(Category(ev.StreamID)) + "." + Token(ev.Type), nil
}

// Partition returns the partition (0..n-1) of a stream id among n: an
// FNV-1a hash, stable across processes and versions, so that every event of
// a stream lands in the same partition.
func Partition(streamID string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(streamID))
	return int(h.Sum32() % uint32(n))
}

// PartitionedSubject returns a SubjectFunc for n partitions:
// "<prefix>.<category>.<type>.p<k>", k = Partition(stream id, n). Filters
// on "<prefix>.<category>.>" keep working; PartitionFilter(prefix, k)
// selects partition k, for one consumer per partition.
func PartitionedSubject(n int) SubjectFunc {
	return func(prefix string, ev eventfold.Event) (string, error) {
		s, _ := DefaultSubject(prefix, ev)
		return s + ".p" + strconv.Itoa(Partition(ev.StreamID, n)), nil
	}
}

// PartitionFilter is the consumer filter subject of partition k of
// PartitionedSubject.
func PartitionFilter(prefix string, k int) string {
	return prefix + ".*.*.p" + strconv.Itoa(k)
}

// ValidateSubject checks that subject is a valid NATS subject to publish on
// under prefix: tokens non-empty, no white space or control character, no
// wildcard. It returns an error matching eventfold.ErrInvalidInput.
func ValidateSubject(prefix, subject string) error {
	if !strings.HasPrefix(subject, prefix+".") {
		return &eventfold.ValidationError{Field: "subject", Reason: fmt.Sprintf("%q is not under the prefix %q", subject, prefix)}
	}
	return validateSubject("subject", subject)
}

// ValidatePrefix checks a subject prefix: one or more valid tokens, no
// wildcard.
func ValidatePrefix(prefix string) error {
	return validateSubject("subject prefix", prefix)
}

func validateSubject(field, s string) error {
	if s == "" {
		return &eventfold.ValidationError{Field: field, Reason: "must not be empty"}
	}
	if !utf8.ValidString(s) {
		return &eventfold.ValidationError{Field: field, Reason: fmt.Sprintf("is not valid UTF-8: %q", s)}
	}
	for i, tok := range strings.Split(s, ".") {
		if tok == "" {
			return &eventfold.ValidationError{Field: field, Reason: fmt.Sprintf("%q has an empty token (number %d)", s, i+1)}
		}
		if tok == "*" || tok == ">" || strings.ContainsAny(tok, "*>") {
			return &eventfold.ValidationError{Field: field, Reason: fmt.Sprintf("%q contains a wildcard", s)}
		}
		for _, r := range tok {
			if r <= ' ' || unicode.IsSpace(r) || unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
				return &eventfold.ValidationError{Field: field, Reason: fmt.Sprintf("%q contains white space or the control character %U", s, r)}
			}
		}
	}
	return nil
}
