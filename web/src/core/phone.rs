//! Phone numbers as the API stores them (K1): E.164 with its `+`. A number typed without a country
//! code is Brazilian (the contact center this is built for); a Brazilian mobile written without
//! its ninth digit — as WhatsApp's ids often are — gets it back, so one person has one number.

/// `phone` in E.164 (`+5511987654321`), or `None` when it cannot be a phone number.
pub fn e164(phone: &str) -> Option<String> {
    let trimmed = phone.trim();
    if trimmed.is_empty() || trimmed.len() > 40 {
        return None;
    }
    if !trimmed.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c)) {
        return None;
    }
    let international = trimmed.starts_with('+') || trimmed.starts_with("00");
    let mut digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    if trimmed.starts_with("00") {
        digits.drain(..2);
    } else if !international {
        // National: an optional trunk 0, then area code and number.
        let national = digits.trim_start_matches('0');
        if (10..=11).contains(&national.len()) {
            digits = format!("55{national}");
        } else if !(national.starts_with("55") && (12..=13).contains(&national.len())) {
            return None;
        } else {
            digits = national.to_owned();
        }
    }
    if let Some(rest) = digits.strip_prefix("55")
        && rest.len() == 10
        && rest[2..].starts_with(['6', '7', '8', '9'])
    {
        digits = format!("55{}9{}", &rest[..2], &rest[2..]);
    }
    if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
        return None;
    }
    Some(format!("+{digits}"))
}

#[cfg(test)]
mod tests {
    use super::e164;

    #[test]
    fn brazilian_numbers_in_every_usual_writing_are_one_number() {
        for written in ["+55 11 98765-4321", "5511987654321", "(11) 98765-4321", "011 98765 4321", "551187654321"] {
            assert_eq!(e164(written).as_deref(), Some("+5511987654321"), "{written}");
        }
        assert_eq!(e164("(11) 3333-4444").as_deref(), Some("+551133334444"), "a landline keeps eight digits");
        assert_eq!(e164("+1 415 555 2671").as_deref(), Some("+14155552671"));
        assert_eq!(e164("0044 20 7946 0958").as_deref(), Some("+442079460958"));
    }

    #[test]
    fn what_cannot_be_a_phone_is_refused() {
        for bad in ["", "abc", "12345", "+0123456789", "11 9876", "+1234567890123456", "9876-5432 ramal 2"] {
            assert_eq!(e164(bad), None, "{bad}");
        }
    }
}
