package shared

import (
	"slices"
	"strings"
)

// SourceFiles returns the files to place for req and the entry file to run.
// A request's Code becomes a file named mainName; otherwise the request's
// files are used and the entry defaults to the first file.
func SourceFiles(req RunRequest, mainName string) (files []File, entry string, err error) {
	switch {
	case req.Code != "" && len(req.Files) > 0:
		// Code is the main file; the other files sit beside it (modules it imports).
		if slices.ContainsFunc(req.Files, func(f File) bool { return f.Path == mainName }) {
			return nil, "", Invalidf("file %q clashes with the file made from code", mainName)
		}
		if req.Entry != "" && req.Entry != mainName {
			return nil, "", Invalidf("entry %q given together with code; drop one", req.Entry)
		}
		return append([]File{{Path: mainName, Content: []byte(req.Code)}}, req.Files...), mainName, nil
	case req.Code != "":
		if req.Entry != "" && req.Entry != mainName {
			return nil, "", Invalidf("entry %q given together with code; drop one", req.Entry)
		}
		return []File{{Path: mainName, Content: []byte(req.Code)}}, mainName, nil
	case len(req.Files) > 0:
		entry = req.Entry
		if entry == "" {
			entry = req.Files[0].Path
		}
		if !slices.ContainsFunc(req.Files, func(f File) bool { return f.Path == entry }) {
			return nil, "", Invalidf("entry %q is not one of the files", entry)
		}
		if strings.HasPrefix(entry, "-") {
			// An interpreter would read it as an option (python3 -c ...).
			return nil, "", Invalidf("entry %q starts with -; rename the file", entry)
		}
		return req.Files, entry, nil
	default:
		return nil, "", Invalidf("no code: give code or files")
	}
}
