package pathguard

import "regexp"

// Single names from outside that become one directory of the workspace
// volume: a workspace name (<root>/<name>) and a key's name (its private
// namespace, <root>/.tenants/<key>/). Both start with a letter or a digit,
// so neither can be ".", "..", or a hidden directory such as ".tenants".
var (
	workspaceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	keyName       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
)

// IsWorkspaceName reports whether s may name a workspace: 1 to 64 letters,
// digits, '-' and '_', starting with a letter or a digit.
func IsWorkspaceName(s string) bool { return workspaceName.MatchString(s) }

// IsKeyName reports whether s may name an API key: 1 to 64 letters, digits,
// '.', '-' and '_', starting with a letter or a digit.
func IsKeyName(s string) bool { return keyName.MatchString(s) }
