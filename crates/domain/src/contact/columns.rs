//! The stored form of a contact: its columns, named once.
//!
//! Staged rows and canonical contacts keep the same sixteen values: the
//! fourteen fields a row can carry, plus the website's `domain` and the MCC's
//! `category`, which are derived. The store's SQL column lists, its `Values`
//! arrays, the staging `COPY`, and the API's field maps are all built from
//! [`Column::ALL`], so adding a column is adding it here (and a migration).

use super::Contact;

/// One stored contact value, in storage order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    CompanyName,
    FirstName,
    LastName,
    Email,
    Phone,
    Website,
    /// Derived from `Website`: its registrable domain.
    Domain,
    Address,
    City,
    Postcode,
    Region,
    Country,
    Segment,
    Type,
    Mcc,
    /// Derived from `Mcc`: its ISO 18245 range's category.
    Category,
}

/// How many columns a stored contact has.
pub const COLUMN_COUNT: usize = 16;

impl Column {
    pub const ALL: [Column; COLUMN_COUNT] = [
        Column::CompanyName,
        Column::FirstName,
        Column::LastName,
        Column::Email,
        Column::Phone,
        Column::Website,
        Column::Domain,
        Column::Address,
        Column::City,
        Column::Postcode,
        Column::Region,
        Column::Country,
        Column::Segment,
        Column::Type,
        Column::Mcc,
        Column::Category,
    ];

    /// The SQL column and wire name.
    pub const fn name(self) -> &'static str {
        match self {
            Column::CompanyName => "company_name",
            Column::FirstName => "first_name",
            Column::LastName => "last_name",
            Column::Email => "email",
            Column::Phone => "phone",
            Column::Website => "website",
            Column::Domain => "domain",
            Column::Address => "address",
            Column::City => "city",
            Column::Postcode => "postcode",
            Column::Region => "region",
            Column::Country => "country",
            Column::Segment => "segment",
            Column::Type => "type",
            Column::Mcc => "mcc",
            Column::Category => "category",
        }
    }

    /// Position in [`Column::ALL`] (variants are declared in that order).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The column whose value must come from the same row as this one's: a
    /// website's domain, an MCC's category (and back).
    pub const fn partner(self) -> Option<Column> {
        match self {
            Column::Website => Some(Column::Domain),
            Column::Domain => Some(Column::Website),
            Column::Mcc => Some(Column::Category),
            Column::Category => Some(Column::Mcc),
            _ => None,
        }
    }
}

/// Every column's name, in storage order.
pub const COLUMN_NAMES: [&str; COLUMN_COUNT] = {
    let mut names = [""; COLUMN_COUNT];
    let mut i = 0;
    while i < COLUMN_COUNT {
        names[i] = Column::ALL[i].name();
        i += 1;
    }
    names
};

impl Contact {
    /// The stored values of a normalized contact, in storage order.
    pub fn columns(&self) -> [Option<&str>; COLUMN_COUNT] {
        [
            self.company_name.as_deref(),
            self.first_name.as_deref(),
            self.last_name.as_deref(),
            self.email.as_ref().map(|e| e.as_str()),
            self.phone.as_ref().map(|p| p.as_str()),
            self.website.as_ref().map(|w| w.url.as_str()),
            self.website.as_ref().map(|w| w.domain.as_str()),
            self.address.as_deref(),
            self.city.as_deref(),
            self.postcode.as_deref(),
            self.region.as_deref(),
            self.country.as_ref().map(|c| c.as_str()),
            self.segment.map(|s| s.as_str()),
            self.contact_type.map(|t| t.as_str()),
            self.mcc.as_ref().map(|m| m.as_str()),
            self.category(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_in_declaration_order_and_partners_pair_up() {
        for (i, c) in Column::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
            assert_eq!(COLUMN_NAMES[i], c.name());
            if let Some(p) = c.partner() {
                assert_eq!(p.partner(), Some(*c));
            }
        }
    }
}
