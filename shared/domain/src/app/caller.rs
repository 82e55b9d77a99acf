//! Who is calling, as the API's JWT authorizer established it.

use crate::ids::CustomerId;

/// The scope that administers the catalog and stock, and may read any order.
pub const SCOPE_ADMIN: &str = "oms:admin";
/// The scope of the warehouse's fulfillment steps.
pub const SCOPE_WAREHOUSE: &str = "oms:warehouse";

/// The authenticated caller: a customer id (the token's `sub`) and the token's scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub customer_id: CustomerId,
    pub scopes: Vec<String>,
}

impl Caller {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    pub fn is_admin(&self) -> bool {
        self.has_scope(SCOPE_ADMIN)
    }
}
