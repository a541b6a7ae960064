package wire

// JSONField finds the member name of the top-level JSON object doc and
// returns its value: a string's contents without the quotes (escapes left as
// they are), or the raw text of a number, true, false or null. ok is false
// when doc is not an object, the member is absent, its value is an object or
// an array, or doc is malformed before the member is found.
//
// It is a scanner, not a parser: it reads doc once, left to right, skipping
// the values of other members (nested objects and arrays by depth, strings
// by their escapes) without decoding or allocating. Member names are
// compared byte for byte, so a name written with escapes does not match.
func JSONField(doc []byte, name string) (value []byte, ok bool) {
	i := skipSpace(doc, 0)
	if i >= len(doc) || doc[i] != '{' {
		return nil, false
	}
	i++
	for {
		i = skipSpace(doc, i)
		if i >= len(doc) || doc[i] != '"' {
			return nil, false // '}' (empty or end) or malformed
		}
		ks, ke, ok := scanString(doc, i)
		if !ok {
			return nil, false
		}
		i = skipSpace(doc, ke+1)
		if i >= len(doc) || doc[i] != ':' {
			return nil, false
		}
		i = skipSpace(doc, i+1)
		if i >= len(doc) {
			return nil, false
		}
		vs, ve, str, ok := scanValue(doc, i)
		if !ok {
			return nil, false
		}
		if string(doc[ks+1:ke]) == name {
			if str {
				return doc[vs+1 : ve], true
			}
			if doc[vs] == '{' || doc[vs] == '[' {
				return nil, false
			}
			return doc[vs : ve+1], true
		}
		i = skipSpace(doc, ve+1)
		if i >= len(doc) || doc[i] != ',' {
			return nil, false
		}
		i++
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the offsets of the opening and closing quotes of the
// string starting at b[i] == '"'.
func scanString(b []byte, i int) (start, end int, ok bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++ // the escaped byte (\uXXXX: its hex digits are plain bytes)
		case '"':
			return i, j, true
		}
	}
	return 0, 0, false
}

// scanValue returns the first and last offsets of the value starting at
// b[i], and whether it is a string.
func scanValue(b []byte, i int) (start, end int, str, ok bool) {
	switch b[i] {
	case '"':
		s, e, ok := scanString(b, i)
		return s, e, true, ok
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				_, e, ok := scanString(b, j)
				if !ok {
					return 0, 0, false, false
				}
				j = e
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i, j, false, true
				}
			}
		}
		return 0, 0, false, false
	default: // number, true, false, null: up to a delimiter
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
			j++
		}
		if j == i {
			return 0, 0, false, false
		}
		return i, j - 1, false, true
	}
}
