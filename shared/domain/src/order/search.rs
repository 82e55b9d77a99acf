//! What staff can find an order by: the customer's e-mail address, a word of the recipient's
//! name, and the end of the order's id. The store keeps one entry per key beside the order
//! (written with it), so a search is a few index reads however many orders there are.
//!
//! Personal data never becomes a key as it is: an e-mail address (in lower case), a name word
//! and the whole name (folded: lower case, accents dropped) are kept as SHA-256 digests, so
//! index keys, metrics and logs never show a name or an address; the search digests what staff
//! type the same way. A digest is a pseudonym, not a secret — a guessed address can be digested
//! and matched — so the keys are protected as the table is (encrypted, least-privilege access). The end of an id is kept
//! as it is (an id is no personal data), reversed so a prefix read finds every id that ends in
//! what was typed, and spread over one partition per last character so no index partition
//! takes every order.

use sha2::{Digest, Sha256};
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use crate::ids::OrderId;
use crate::order::Order;

/// The most name words of one order that are kept as keys of their own: its first three and
/// its last ("Maria de la Cruz": maria, de, la and cruz; a longer name's middle words are found
/// through the whole name's key).
pub const MAX_NAME_WORDS: usize = 4;

/// The most search keys one order has: its e-mail address, its whole name, its name words and
/// the end of its id. A transaction that creates an order leaves room for them.
pub const MAX_SEARCH_ENTRIES: usize = 3 + MAX_NAME_WORDS;

/// The fewest characters of an id's end that are searched for: fewer would match too many.
pub const MIN_ID_END: usize = 4;

/// One key an order is found by: the index partition it is listed under and its sort key
/// there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SearchEntry {
    pub partition: String,
    pub sort: String,
}

/// One read of the search index: the entries of `partition` whose sort key starts with
/// `prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerm {
    pub partition: String,
    pub prefix: String,
}

impl SearchTerm {
    pub fn matches(&self, entry: &SearchEntry) -> bool {
        entry.partition == self.partition && entry.sort.starts_with(&self.prefix)
    }
}

/// What to read for what staff typed: each inner list is one way the text may be meant (an
/// e-mail address, a name, the end of an id) and finds the orders that match all its terms;
/// the answer is every order any way finds.
pub fn search_terms(text: &str) -> Vec<Vec<SearchTerm>> {
    let text = text.trim();
    let mut ways = Vec::new();
    if text.contains('@') {
        ways.push(vec![exact(email_partition(text))]);
        return ways;
    }
    let words = name_words(text);
    if words.len() > 1 {
        // The whole name, exactly: one read however common its words are.
        ways.push(vec![exact(full_name_partition(&words))]);
    }
    if !words.is_empty() && words.len() <= MAX_NAME_WORDS {
        ways.push(words.iter().map(|w| exact(word_partition(w))).collect());
    }
    let compact: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .to_ascii_uppercase();
    if (MIN_ID_END..26).contains(&compact.len()) && is_crockford(&compact) {
        let reversed: String = compact.chars().rev().collect();
        if let Some(last) = compact.chars().last() {
            ways.push(vec![SearchTerm {
                partition: id_end_partition(last),
                prefix: reversed,
            }]);
        }
    }
    ways
}

impl Order {
    /// The keys the order is found by.
    pub fn search_entries(&self) -> Vec<SearchEntry> {
        let id = self.id.as_str();
        let mut entries = vec![SearchEntry {
            partition: email_partition(self.contact.email()),
            sort: id.to_owned(),
        }];
        let words = name_words(self.shipping.address.name());
        if words.len() > 1 {
            entries.push(SearchEntry {
                partition: full_name_partition(&words),
                sort: id.to_owned(),
            });
        }
        let last = words.len().saturating_sub(1);
        for (n, word) in words.iter().enumerate() {
            if n < MAX_NAME_WORDS - 1 || n == last {
                entries.push(SearchEntry {
                    partition: word_partition(word),
                    sort: id.to_owned(),
                });
            }
        }
        if let Some(last) = id.chars().last() {
            entries.push(SearchEntry {
                partition: id_end_partition(last),
                sort: id.chars().rev().collect(),
            });
        }
        entries.sort();
        entries.dedup();
        entries
    }

    /// Whether the order is found by every one of `terms` (a search checks what the index
    /// listed against the order as it is now): against its keys, and every word of its name.
    pub fn found_by(&self, terms: &[SearchTerm]) -> bool {
        let mut entries = self.search_entries();
        entries.extend(
            name_words(self.shipping.address.name())
                .iter()
                .map(|word| SearchEntry {
                    partition: word_partition(word),
                    sort: self.id.as_str().to_owned(),
                }),
        );
        terms.iter().all(|t| entries.iter().any(|e| t.matches(e)))
    }
}

/// The order an entry of the index names.
pub fn order_of(entry: &SearchEntry) -> Option<OrderId> {
    let id = if entry.partition.starts_with("IDEND#") {
        entry.sort.chars().rev().collect()
    } else {
        entry.sort.clone()
    };
    OrderId::parse(id).ok()
}

fn exact(partition: String) -> SearchTerm {
    SearchTerm {
        partition,
        prefix: String::new(),
    }
}

/// Lower case, accents dropped, only letters and digits kept.
fn fold(text: &str) -> String {
    text.nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The words of a name, folded, each once, in order.
fn name_words(name: &str) -> Vec<String> {
    let folded = fold(name);
    let mut words: Vec<String> = Vec::new();
    for word in folded.split(|c: char| !c.is_alphanumeric()) {
        if !word.is_empty() && !words.iter().any(|w| w == word) {
            words.push(word.to_owned());
        }
    }
    words
}

fn digest(kind: &str, value: &str) -> String {
    let hash = Sha256::digest(format!("{kind}:{value}").as_bytes());
    hex::encode(&hash[..16])
}

/// An address in lower case: `José@…` and `jose@…` are different mailboxes, so accents stay.
fn email_partition(email: &str) -> String {
    format!("EMAIL#{}", digest("email", &email.trim().to_lowercase()))
}

fn word_partition(word: &str) -> String {
    format!("NAME#{}", digest("name", word))
}

fn full_name_partition(words: &[String]) -> String {
    format!("FULLNAME#{}", digest("full-name", &words.join(" ")))
}

fn id_end_partition(last: char) -> String {
    format!("IDEND#{last}")
}

/// Whether `text` could be part of an order id (Crockford's base 32, as ULIDs are written).
fn is_crockford(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_ascii_digit() || (c.is_ascii_uppercase() && !"ILOU".contains(c)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::tests::{placed, product};
    use serde_json::json;

    fn order() -> Order {
        placed(
            json!([{"sku": "A", "quantity": 1}]),
            &[product("A", 1000, 5)],
        )
    }

    fn finds(order: &Order, text: &str) -> bool {
        search_terms(text).iter().any(|way| order.found_by(way))
    }

    #[test]
    fn an_order_is_found_by_its_email_name_words_and_the_end_of_its_id() {
        let order = order();
        let email = order.contact.email().to_uppercase();
        assert!(finds(&order, &format!("  {email} ")), "e-mail, any case");
        let name = order.shipping.address.name().to_owned();
        assert!(finds(&order, &name), "the whole name");
        let family = name.split_whitespace().last().unwrap().to_lowercase();
        assert!(finds(&order, &family), "one word of it");
        let id = order.id.as_str();
        assert!(finds(&order, &id[id.len() - 6..]), "the id's end");
        assert!(finds(&order, &id[id.len() - 6..].to_lowercase()));
        assert!(!finds(&order, &id[..8]), "not its start");
        assert!(!finds(&order, &id[id.len() - 3..]), "too short to search");
        assert!(!finds(&order, "nobody@example.com"));
        assert!(
            !finds(&order, &format!("{name} Somebody")),
            "every word must match"
        );
    }

    #[test]
    fn a_long_names_family_name_and_its_whole_are_keys_and_an_email_keeps_its_accents() {
        let mut order = order();
        order.shipping.address = crate::contact::Address::checked(
            "Maria del Carmen de la Cruz".into(),
            "Calle 1".into(),
            None,
            "Madrid".into(),
            None,
            "28001".into(),
            crate::contact::CountryCode::parse("ES").unwrap(),
        );
        assert!(order.search_entries().len() <= MAX_SEARCH_ENTRIES);
        assert!(finds(&order, "cruz"), "the last word is a key of its own");
        assert!(finds(&order, "maria cruz"), "words of it, all found");
        assert!(
            finds(&order, "Maria del Carmen de la Cruz"),
            "the whole name"
        );
        assert!(!finds(&order, "Maria del Carmen de la Paz"));
        let email = order.contact.email().to_owned();
        order.contact = crate::contact::Contact::checked(format!("josé.{email}"), None, None);
        assert!(finds(&order, &format!("JOSÉ.{email}")));
        assert!(!finds(&order, &format!("jose.{email}")), "another mailbox");
    }

    #[test]
    fn names_fold_accents_and_case_and_no_key_holds_personal_data() {
        let mut order = order();
        order.shipping.address = crate::contact::Address::checked(
            "José Müller-Lüdenscheidt".into(),
            "Hauptstraße 1".into(),
            None,
            "Berlin".into(),
            None,
            "10115".into(),
            crate::contact::CountryCode::parse("DE").unwrap(),
        );
        assert!(finds(&order, "jose muller"));
        assert!(finds(&order, "LUDENSCHEIDT"));
        for entry in order.search_entries() {
            let key = format!("{}{}", entry.partition, entry.sort).to_lowercase();
            for personal in ["jose", "muller", "ludenscheidt", "example"] {
                assert!(!key.contains(personal), "{key}");
            }
            assert_eq!(order_of(&entry).as_ref(), Some(&order.id));
        }
    }
}
