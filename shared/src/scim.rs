//! SCIM 2.0 (RFC 7643, RFC 7644) protocol logic: schemas, filters, PATCH, errors and
//! list shapes. Pure: values in, values out.
