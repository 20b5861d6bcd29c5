//! Which route a request matches: route keys parsed as API Gateway reads them, matched against
//! the method and path, and ranked by how specific they are.

use super::event::percent_decode;

/// A parsed route key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RoutePattern {
    Default,
    Path {
        /// `None` for `ANY`.
        method: Option<String>,
        segments: Vec<Segment>,
        /// The `{name+}` variable closing the path, if any.
        greedy: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment {
    Literal(String),
    Variable(String),
}

/// How specific a match is: smaller wins. A path without a greedy variable beats one with; then,
/// segment by segment, a literal beats a variable, which beats the greedy variable; then a method
/// beats `ANY`; `$default` comes last.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Specificity {
    Path {
        greedy: bool,
        /// 0 literal, 1 variable, 2 greedy variable, per segment.
        segments: Vec<u8>,
        any_method: bool,
    },
    Default,
}

impl RoutePattern {
    pub(super) fn parse(key: &str) -> Option<Self> {
        if key == "$default" {
            return Some(Self::Default);
        }
        let (method, path) = key.split_once(' ')?;
        let method = match method {
            "ANY" => None,
            method if !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase()) => {
                Some(method.to_owned())
            }
            _ => return None,
        };
        let path = path.strip_prefix('/')?;
        let mut segments = Vec::new();
        let mut greedy = None;
        let mut parts = path.split('/').filter(|_| !path.is_empty()).peekable();
        while let Some(part) = parts.next() {
            let variable = part.strip_prefix('{').and_then(|p| p.strip_suffix('}'));
            match variable {
                Some(name) if name.ends_with('+') => {
                    let name = name.trim_end_matches('+');
                    if name.is_empty() || parts.peek().is_some() {
                        return None;
                    }
                    greedy = Some(name.to_owned());
                }
                Some("") => return None,
                Some(name) => segments.push(Segment::Variable(name.to_owned())),
                None if part.contains(['{', '}']) => return None,
                None => segments.push(Segment::Literal(part.to_owned())),
            }
        }
        Some(Self::Path {
            method,
            segments,
            greedy,
        })
    }

    /// Whether a request matches, how specifically, and the path parameters it binds.
    pub(super) fn matches(
        &self,
        method: &str,
        path: &str,
    ) -> Option<(Specificity, Vec<(String, String)>)> {
        let Self::Path {
            method: route_method,
            segments,
            greedy,
        } = self
        else {
            return Some((Specificity::Default, Vec::new()));
        };
        if route_method.as_deref().is_some_and(|m| m != method) {
            return None;
        }
        let path = path.strip_prefix('/')?;
        let mut request: Vec<&str> = if path.is_empty() {
            Vec::new()
        } else {
            path.split('/').collect()
        };
        let rest = match greedy {
            Some(_) if request.len() > segments.len() => {
                request.split_off(segments.len()).join("/")
            }
            Some(_) => return None,
            None if request.len() == segments.len() => String::new(),
            None => return None,
        };
        let mut parameters = Vec::new();
        let mut kinds = Vec::with_capacity(segments.len() + 1);
        for (segment, part) in segments.iter().zip(&request) {
            match segment {
                Segment::Literal(literal) if literal == part => kinds.push(0),
                Segment::Variable(name) if !part.is_empty() => {
                    kinds.push(1);
                    parameters.push((name.clone(), percent_decode(part)));
                }
                _ => return None,
            }
        }
        if let Some(name) = greedy {
            if rest.is_empty() {
                return None;
            }
            kinds.push(2);
            parameters.push((name.clone(), percent_decode(&rest)));
        }
        let specificity = Specificity::Path {
            greedy: greedy.is_some(),
            segments: kinds,
            any_method: route_method.is_none(),
        };
        Some((specificity, parameters))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(key: &str, method: &str, path: &str) -> Option<Vec<(String, String)>> {
        RoutePattern::parse(key)?
            .matches(method, path)
            .map(|(_, parameters)| parameters)
    }

    #[test]
    fn route_keys_parse_as_api_gateway_writes_them() {
        assert_eq!(RoutePattern::parse("$default"), Some(RoutePattern::Default));
        assert!(RoutePattern::parse("POST /v1/encrypt").is_some());
        assert!(RoutePattern::parse("ANY /").is_some());
        assert!(RoutePattern::parse("GET /files/{proxy+}").is_some());
        for bad in [
            "",
            "/v1/encrypt",
            "post /x",
            "GET x",
            "GET /{proxy+}/x",
            "GET /{}",
            "GET /a{b}",
        ] {
            assert_eq!(RoutePattern::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn paths_match_segment_by_segment() {
        assert_eq!(matches("GET /", "GET", "/"), Some(vec![]));
        assert_eq!(matches("GET /", "GET", "/x"), None);
        assert_eq!(matches("GET /version", "POST", "/version"), None);
        assert_eq!(matches("ANY /version", "DELETE", "/version"), Some(vec![]));
        assert_eq!(matches("GET /version", "GET", "/version/"), None);
        assert_eq!(
            matches("GET /keys/{id}", "GET", "/keys/a%20b"),
            Some(vec![("id".into(), "a b".into())])
        );
        assert_eq!(matches("GET /keys/{id}", "GET", "/keys/"), None);
        assert_eq!(
            matches("GET /f/{proxy+}", "GET", "/f/a/b"),
            Some(vec![("proxy".into(), "a/b".into())])
        );
        assert_eq!(matches("GET /f/{proxy+}", "GET", "/f"), None);
    }

    #[test]
    fn more_specific_routes_rank_first() {
        let rank = |key: &str, method: &str, path: &str| {
            RoutePattern::parse(key)
                .and_then(|pattern| pattern.matches(method, path))
                .map(|(specificity, _)| specificity)
        };
        let order = [
            rank("GET /a/b", "GET", "/a/b"),
            rank("ANY /a/b", "GET", "/a/b"),
            rank("GET /a/{x}", "GET", "/a/b"),
            rank("GET /{x}/{y}", "GET", "/a/b"),
            rank("GET /a/{proxy+}", "GET", "/a/b"),
            rank("GET /{proxy+}", "GET", "/a/b"),
            rank("$default", "GET", "/a/b"),
        ];
        assert!(order.iter().all(Option::is_some));
        assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "{order:?}");
    }
}
