//! Dokko's pagination: the `page_num` / `per_page` query and the paginated list shape.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub const DEFAULT_PER_PAGE: i64 = 10;
pub const MAX_PER_PAGE: i64 = 100;

/// A query parameter that failed validation; the message names the parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    pub param: &'static str,
    pub message: String,
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParamError {}

/// The pagination query as it arrives: kept as text so a bad value gets a message naming the
/// parameter instead of a generic deserialisation error.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page number, from 1 (default 1).
    #[param(value_type = Option<i64>, minimum = 1)]
    pub page_num: Option<String>,
    /// Items per page, 1 to 100 (default 10).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub per_page: Option<String>,
}

impl PageQuery {
    /// Validates the query: `page_num` at least 1, `per_page` from 1 to 100.
    pub fn page(&self) -> Result<Page, ParamError> {
        let number = parse_param("page_num", self.page_num.as_deref(), 1)?;
        if number < 1 {
            return Err(ParamError { param: "page_num", message: "page_num must be at least 1".into() });
        }
        let size = parse_param("per_page", self.per_page.as_deref(), DEFAULT_PER_PAGE)?;
        if !(1..=MAX_PER_PAGE).contains(&size) {
            return Err(ParamError {
                param: "per_page",
                message: format!("per_page must be between 1 and {MAX_PER_PAGE}"),
            });
        }
        Ok(Page { number, size })
    }
}

fn parse_param(param: &'static str, raw: Option<&str>, default: i64) -> Result<i64, ParamError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(default),
        Some(text) => text
            .parse::<i64>()
            .map_err(|_| ParamError { param, message: format!("{param} must be an integer, got {text:?}") }),
    }
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based page number.
    pub number: i64,
    /// Items per page.
    pub size: i64,
}

impl Page {
    pub const FIRST: Page = Page { number: 1, size: DEFAULT_PER_PAGE };

    /// Rows to skip (SQL `OFFSET`).
    pub fn offset(&self) -> i64 {
        (self.number - 1).saturating_mul(self.size)
    }

    /// Rows to read (SQL `LIMIT`).
    pub fn limit(&self) -> i64 {
        self.size
    }
}

/// The paginated list shape of the Dokko API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Paginated<T> {
    pub items: Vec<T>,
    pub has_next_page: bool,
    pub page_number: i64,
    pub page_count: i64,
    pub page_size: i64,
    pub total_records: i64,
}

impl<T> Paginated<T> {
    /// One page of `items` out of `total_records`.
    pub fn new(items: Vec<T>, page: Page, total_records: i64) -> Self {
        let page_count = if total_records <= 0 { 0 } else { (total_records + page.size - 1) / page.size };
        Self {
            items,
            has_next_page: page.number < page_count,
            page_number: page.number,
            page_count,
            page_size: page.size,
            total_records: total_records.max(0),
        }
    }

    /// The same page with each item transformed.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Paginated<U> {
        Paginated {
            items: self.items.into_iter().map(f).collect(),
            has_next_page: self.has_next_page,
            page_number: self.page_number,
            page_count: self.page_count,
            page_size: self.page_size,
            total_records: self.total_records,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(page_num: Option<&str>, per_page: Option<&str>) -> PageQuery {
        PageQuery { page_num: page_num.map(Into::into), per_page: per_page.map(Into::into) }
    }

    #[test]
    fn defaults_are_first_page_of_ten() {
        assert_eq!(query(None, None).page(), Ok(Page { number: 1, size: 10 }));
    }

    #[test]
    fn out_of_range_values_name_the_parameter() {
        assert_eq!(query(Some("0"), None).page().map_err(|e| e.param), Err("page_num"));
        assert_eq!(query(None, Some("0")).page().map_err(|e| e.param), Err("per_page"));
        assert_eq!(query(None, Some("101")).page().map_err(|e| e.param), Err("per_page"));
        assert_eq!(query(Some("x"), None).page().map_err(|e| e.param), Err("page_num"));
        let err = query(None, Some("abc")).page().expect_err("abc is no number");
        assert!(err.message.contains("per_page"), "{err}");
        assert_eq!(query(Some("3"), Some("100")).page(), Ok(Page { number: 3, size: 100 }));
    }

    #[test]
    fn page_count_and_next_page_follow_the_total() {
        let page = Page { number: 1, size: 10 };
        let p = Paginated::new(vec![1; 10], page, 47);
        assert_eq!((p.page_count, p.has_next_page, p.total_records), (5, true, 47));
        let last = Paginated::new(vec![1; 7], Page { number: 5, size: 10 }, 47);
        assert!(!last.has_next_page);
        let empty = Paginated::<i32>::new(vec![], page, 0);
        assert_eq!((empty.page_count, empty.has_next_page), (0, false));
        assert_eq!(Page { number: 3, size: 20 }.offset(), 40);
    }
}
