//! Owned statement parameters, so a request can travel to the writer or a reader thread.

use rusqlite::ToSql;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use smallvec::SmallVec;

use crate::error::{Error, Result};

/// Positional parameters of one statement, owned so they can cross threads.
///
/// Build them with [`params!`](crate::params), from a tuple of [`ToSql`] values, from `()` for
/// none, or from a `Vec<Value>`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params(pub(crate) SmallVec<[Value; 4]>);

impl Params {
    /// The values, in order.
    pub fn values(&self) -> &[Value] {
        &self.0
    }

    /// The values as rusqlite parameters.
    pub(crate) fn bind(&self) -> rusqlite::ParamsFromIter<std::slice::Iter<'_, Value>> {
        rusqlite::params_from_iter(self.0.iter())
    }
}

/// Converts one [`ToSql`] value into an owned [`Value`].
///
/// # Errors
/// [`Error::Parameter`] if the value cannot be represented.
pub fn to_value<T: ToSql + ?Sized>(value: &T) -> Result<Value> {
    match value.to_sql()? {
        ToSqlOutput::Borrowed(value_ref) => Ok(match value_ref {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(integer) => Value::Integer(integer),
            ValueRef::Real(real) => Value::Real(real),
            ValueRef::Text(text) => Value::Text(String::from_utf8_lossy(text).into_owned()),
            ValueRef::Blob(blob) => Value::Blob(blob.to_vec()),
        }),
        ToSqlOutput::Owned(value) => Ok(value),
        other => Err(Error::Parameter {
            message: format!("unsupported parameter kind {other:?}"),
        }),
    }
}

/// Anything that can become [`Params`].
pub trait IntoParams: Sized {
    /// Converts into owned parameters.
    ///
    /// # Errors
    /// [`Error::Parameter`] if a value cannot be represented.
    fn into_params(self) -> Result<Params>;

    /// Binds the values onto `statement` directly, checking their count. Blocking reads use
    /// this to skip the owned copy that only crossing a thread needs.
    ///
    /// # Errors
    /// [`Error::Parameter`] for a wrong count or a value that cannot be represented.
    fn bind_to(self, statement: &mut rusqlite::Statement<'_>) -> Result<()> {
        let params = self.into_params()?;
        check_count(statement, params.0.len())?;
        for (index, value) in params.0.iter().enumerate() {
            statement.raw_bind_parameter(index + 1, value)?;
        }
        Ok(())
    }
}

fn check_count(statement: &rusqlite::Statement<'_>, given: usize) -> Result<()> {
    let expected = statement.parameter_count();
    if given == expected {
        Ok(())
    } else {
        Err(Error::Parameter {
            message: format!("the statement takes {expected} parameters but {given} were given"),
        })
    }
}

impl IntoParams for Params {
    fn into_params(self) -> Result<Params> {
        Ok(self)
    }
}

impl IntoParams for Vec<Value> {
    fn into_params(self) -> Result<Params> {
        Ok(Params(SmallVec::from_vec(self)))
    }
}

impl IntoParams for () {
    fn into_params(self) -> Result<Params> {
        Ok(Params(SmallVec::new()))
    }
}

macro_rules! tuple_params {
    ($($name:ident)+) => {
        impl<$($name: ToSql),+> IntoParams for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_params(self) -> Result<Params> {
                let ($($name,)+) = self;
                // Up to four values stay inline: no allocation for typical statements.
                Ok(Params(smallvec::smallvec![$(to_value(&$name)?),+]))
            }

            #[allow(non_snake_case)]
            fn bind_to(self, statement: &mut rusqlite::Statement<'_>) -> Result<()> {
                let ($($name,)+) = self;
                let values: &[&dyn ToSql] = &[$(&$name),+];
                check_count(statement, values.len())?;
                for (index, value) in values.iter().enumerate() {
                    statement.raw_bind_parameter(index + 1, value)?;
                }
                Ok(())
            }
        }
    };
}
tuple_params!(A);
tuple_params!(A B);
tuple_params!(A B C);
tuple_params!(A B C D);
tuple_params!(A B C D E);
tuple_params!(A B C D E F);
tuple_params!(A B C D E F G);
tuple_params!(A B C D E F G H);
tuple_params!(A B C D E F G H I);
tuple_params!(A B C D E F G H I J);

/// Builds [`Params`] from a list of values of any [`ToSql`] type.
///
/// ```
/// let params = litehouse::params![1, "two", 3.0, None::<i64>];
/// assert_eq!(params.values().len(), 4);
/// ```
///
/// # Panics
/// Never for the built-in types; a custom `ToSql` whose `to_sql` fails makes it panic, so
/// use a tuple (whose conversion returns an error) for those.
#[macro_export]
macro_rules! params {
    () => { $crate::Params::default() };
    ($($value:expr),+ $(,)?) => {
        <Vec<$crate::Value> as $crate::IntoParams>::into_params(vec![
            $($crate::to_value(&$value).expect("parameter converts to a SQLite value")),+
        ]).expect("a Vec<Value> always converts")
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_and_macro_agree() -> Result<()> {
        let from_tuple = (1_i64, "a", Some(2.5_f64), None::<String>).into_params()?;
        let from_macro = crate::params![1_i64, "a", Some(2.5_f64), None::<String>];
        assert_eq!(from_tuple, from_macro);
        assert_eq!(from_tuple.values()[1], Value::Text("a".into()));
        assert_eq!(from_tuple.values()[3], Value::Null);
        Ok(())
    }
}
