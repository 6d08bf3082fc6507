//! Brazilian tax ids (K1): CPF (people, 11 digits) and CNPJ (companies, 14 characters — from 2026
//! the first 12 may be letters). Both are stored normalised (no punctuation, letters upper case)
//! once their check digits hold, shown formatted, and masked in lists.

/// A CPF's 11 digits when `text` is one whose check digits hold.
pub fn cpf(text: &str) -> Option<String> {
    let digits: Vec<u32> = plain(text)?.chars().map(|c| c.to_digit(10)).collect::<Option<_>>()?;
    if digits.len() != 11 || digits.iter().all(|d| *d == digits[0]) {
        return None;
    }
    let check = |n: usize| {
        let sum: u32 = digits[..n].iter().enumerate().map(|(i, d)| d * (n as u32 + 1 - i as u32)).sum();
        (sum * 10) % 11 % 10
    };
    (check(9) == digits[9] && check(10) == digits[10]).then(|| digits.iter().map(|d| d.to_string()).collect())
}

/// A CNPJ's 14 characters when `text` is one whose check digits hold: each character counts as
/// its code minus 48 ('0'–'9' are 0–9, 'A' is 17), weights 2–9 from the right, remainder 0 or 1
/// gives 0, else 11 minus the remainder.
pub fn cnpj(text: &str) -> Option<String> {
    let plain = plain(text)?.to_ascii_uppercase();
    let chars: Vec<u8> = plain.bytes().collect();
    if chars.len() != 14
        || !chars[..12].iter().all(u8::is_ascii_alphanumeric)
        || !chars[12..].iter().all(u8::is_ascii_digit)
        || chars.iter().all(|c| *c == chars[0])
    {
        return None;
    }
    let values: Vec<u32> = chars.iter().map(|c| u32::from(*c) - 48).collect();
    let check = |n: usize| {
        let sum: u32 = values[..n].iter().rev().enumerate().map(|(i, v)| v * (2 + (i as u32 % 8))).sum();
        let r = sum % 11;
        if r < 2 { 0 } else { 11 - r }
    };
    (check(12) == values[12] && check(13) == values[13]).then_some(plain)
}

/// Without the punctuation people type (`.`, `-`, `/`, spaces); `None` for anything else.
fn plain(text: &str) -> Option<String> {
    let kept: String = text.chars().filter(|c| !matches!(c, '.' | '-' | '/' | ' ')).collect();
    (!kept.is_empty() && kept.len() <= 14 && kept.chars().all(|c| c.is_ascii_alphanumeric())).then_some(kept)
}

/// `12345678909` as `123.456.789-09`.
pub fn format_cpf(cpf: &str) -> String {
    if cpf.len() != 11 {
        return cpf.to_owned();
    }
    format!("{}.{}.{}-{}", &cpf[..3], &cpf[3..6], &cpf[6..9], &cpf[9..])
}

/// `12ABC34501DE35` as `12.ABC.345/01DE-35`.
pub fn format_cnpj(cnpj: &str) -> String {
    if cnpj.len() != 14 || !cnpj.is_ascii() {
        return cnpj.to_owned();
    }
    format!("{}.{}.{}/{}-{}", &cnpj[..2], &cnpj[2..5], &cnpj[5..8], &cnpj[8..12], &cnpj[12..])
}

/// A CPF in a list: only the middle six digits show (`***.456.789-**`).
pub fn mask_cpf(cpf: &str) -> String {
    if cpf.len() != 11 {
        return "***".into();
    }
    format!("***.{}.{}-**", &cpf[3..6], &cpf[6..9])
}

/// A CNPJ in a list: the company's root shows, its branch and check digits do not.
pub fn mask_cnpj(cnpj: &str) -> String {
    if cnpj.len() != 14 || !cnpj.is_ascii() {
        return "***".into();
    }
    format!("{}.{}.{}/****-**", &cnpj[..2], &cnpj[2..5], &cnpj[5..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpfs_are_checked_by_their_digits() {
        assert_eq!(cpf("529.982.247-25").as_deref(), Some("52998224725"));
        assert_eq!(cpf("52998224725").as_deref(), Some("52998224725"));
        for bad in ["529.982.247-24", "111.111.111-11", "5299822472", "52998224725x", "", "abc.def.ghi-jk"] {
            assert_eq!(cpf(bad), None, "{bad}");
        }
        assert_eq!(format_cpf("52998224725"), "529.982.247-25");
        assert_eq!(mask_cpf("52998224725"), "***.982.247-**");
    }

    #[test]
    fn numeric_and_alphanumeric_cnpjs_are_checked_by_character_codes() {
        assert_eq!(cnpj("11.222.333/0001-81").as_deref(), Some("11222333000181"));
        // The Receita Federal's example of the alphanumeric CNPJ.
        assert_eq!(cnpj("12.ABC.345/01DE-35").as_deref(), Some("12ABC34501DE35"));
        assert_eq!(cnpj("12abc34501de35").as_deref(), Some("12ABC34501DE35"), "letters in any case");
        for bad in ["11.222.333/0001-82", "12.ABC.345/01DE-36", "00000000000000", "12ABC34501DE3A", "1122233300018"] {
            assert_eq!(cnpj(bad), None, "{bad}");
        }
        assert_eq!(format_cnpj("12ABC34501DE35"), "12.ABC.345/01DE-35");
        assert_eq!(mask_cnpj("11222333000181"), "11.222.333/****-**");
    }
}
